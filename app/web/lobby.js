// The lobby screen for citizens: which ticket goes to which desk, the newest one large and highlighted
// for a few seconds, the last few calls, and how many are waiting per ticket category.
//
// Query string: queue=borgerservice,pas  lang=da|en (default: Danish with English beside it)
//               limit=6  interval=2000 (ms)  token=<read token>

import { Poller, element, getJson, listParam, param, pollInterval } from "./screens.js";

const DA = {
  title: "Borgerservice",
  nowCalling: "Nu kalder vi",
  recent: "Seneste kald",
  waiting: "Venter nu",
  desk: "Skranke",
  sentence: (number, desk) => `Nummer ${number} - gå til skranke ${desk}`,
  none: "Ingen numre er kaldt endnu",
  noWaiting: "Ingen venter",
  stale: "Forældet",
  connecting: "Forbinder …",
  denied: "Adgang nægtet",
  lostSince: (time) => `Forbindelse afbrudt – sidst opdateret kl. ${time}`,
  lostNoData: "Forbindelse afbrudt",
};
const EN = {
  title: "Citizen service",
  nowCalling: "Now calling",
  recent: "Recently called",
  waiting: "Waiting now",
  desk: "Desk",
  sentence: (number, desk) => `Number ${number} - please go to desk ${desk}`,
  none: "No numbers called yet",
  noWaiting: "Nobody waiting",
  stale: "Stale",
  connecting: "Connecting …",
  denied: "Access denied",
  lostSince: (time) => `Connection lost – last updated ${time}`,
  lostNoData: "Connection lost",
};
const QUEUE_NAMES = {
  da: { borgerservice: "Borgerservice", pas: "Pas", koerekort: "Kørekort", sundhed: "Sundhedskort" },
  en: { borgerservice: "Citizen service", pas: "Passports", koerekort: "Driving licences", sundhed: "Health cards" },
};
// How long the newest call stays highlighted.
const HIGHLIGHT_MS = 8000;

const mode = param("lang", "da+en");
const primary = mode === "en" ? EN : DA;
const secondary = mode === "da+en" ? EN : null;
const QUEUES = listParam("queue");
const LIMIT = Math.min(Math.max(Number(param("limit", "6")) || 6, 1), 20);

// Danish first with English beside it in a quieter style, unless ?lang= asks for one language.
function bilingual(node, pick) {
  node.replaceChildren(pick(primary));
  if (secondary) node.append(" ", element("span", "en", `/ ${pick(secondary)}`));
}

function queueName(queue) {
  const names = QUEUE_NAMES[mode === "en" ? "en" : "da"];
  return names[queue] || queue.charAt(0).toUpperCase() + queue.slice(1).replace(/[-_]/g, " ");
}

const nowCalling = document.getElementById("now-calling");
const nowNumber = document.getElementById("now-number");
const nowDesk = document.getElementById("now-desk");
const nowSentence = document.getElementById("now-sentence");
const recentList = document.getElementById("recent");
const waitingList = document.getElementById("waiting");
let newestKey = null;
let highlightTimer = null;
let firstRender = true;

function highlight() {
  nowCalling.classList.add("fresh");
  window.clearTimeout(highlightTimer);
  highlightTimer = window.setTimeout(() => nowCalling.classList.remove("fresh"), HIGHLIGHT_MS);
}

function render({ data }) {
  zone = data.time_zone;
  const calls = data.recent_calls;
  const newest = calls[0];
  if (!newest) {
    nowNumber.textContent = "–";
    nowDesk.replaceChildren();
    nowSentence.textContent = primary.none;
  } else {
    const number = newest.ticket_number ?? "–";
    const key = `${newest.ticket_number}|${newest.desk}|${newest.called_at}`;
    nowNumber.textContent = number;
    nowDesk.replaceChildren(element("small", "", primary.desk), newest.desk);
    nowSentence.replaceChildren(primary.sentence(number, newest.desk));
    if (secondary) nowSentence.append(element("span", "en", secondary.sentence(number, newest.desk)));
    // A call already old when the screen opened is shown, not announced.
    const age = Date.parse(data.as_of) - Date.parse(newest.called_at);
    if (key !== newestKey && (!firstRender || age < HIGHLIGHT_MS)) highlight();
    newestKey = key;
  }
  firstRender = false;

  recentList.replaceChildren(
    ...calls.slice(1, LIMIT + 1).map((call) => {
      const row = element("li", "live-value");
      const desk = element("span", "desk", `${primary.desk} `);
      desk.append(element("strong", "", call.desk));
      row.append(element("span", "number", call.ticket_number ?? "–"), desk);
      return row;
    }),
  );

  const waiting = new Map(data.waiting.map((item) => [item.queue, item.waiting_now]));
  for (const queue of QUEUES || []) if (!waiting.has(queue)) waiting.set(queue, 0);
  const items = [...waiting.entries()].map(([queue, count]) => {
    const item = element("li");
    item.dataset.queue = queue;
    item.append(`${queueName(queue)}`, element("strong", "live-value", String(count)));
    return item;
  });
  waitingList.replaceChildren(...(items.length ? items : [element("li", "placeholder", primary.noWaiting)]));
}

async function fetchAll(signal) {
  const data = await getJson("/v1/lobby", { queue: QUEUES ? QUEUES.join(",") : null, limit: LIMIT + 1 }, signal);
  return { asOf: data.as_of, data };
}

let zone = "Europe/Copenhagen";
const clock = document.getElementById("clock");
function showClock() {
  clock.textContent = new Date().toLocaleTimeString("da-DK", { timeZone: zone, hour: "2-digit", minute: "2-digit" });
}

document.documentElement.lang = mode === "en" ? "en" : "da";
document.getElementById("title").textContent = primary.title;
bilingual(document.getElementById("now-heading"), (t) => t.nowCalling);
bilingual(document.getElementById("recent-heading"), (t) => t.recent);
bilingual(document.getElementById("waiting-heading"), (t) => t.waiting);
document.getElementById("stale-badge").textContent = primary.stale;
const texts = secondary
  ? {
      connecting: primary.connecting,
      denied: `${primary.denied} / ${secondary.denied}`,
      lostSince: (time) => `${primary.lostSince(time)} / ${secondary.lostSince(time)}`,
      lostNoData: `${primary.lostNoData} / ${secondary.lostNoData}`,
    }
  : primary;
new Poller({ interval: pollInterval(), fetchAll, render, banner: document.getElementById("connection"), texts }).start();
showClock();
window.setInterval(showClock, 1000);
