// The lobby screen for citizens: which ticket goes to which desk, the newest one large and highlighted
// for a few seconds, the last few calls, how many are waiting per ticket category, and how many desks
// are open (per category and in all; desks=0 leaves them out).
//
// Query string: queue=borgerservice,pas  lang=da|en (default: Danish with English beside it)
//               limit=6  desks=1|0  interval=2000 (ms)  token=<read token>

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
  desksOpen: "Åbne skranker",
  desksIn: (count) => (count === 1 ? "1 skranke" : `${count} skranker`),
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
  desksOpen: "Desks open",
  desksIn: (count) => (count === 1 ? "1 desk" : `${count} desks`),
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
const SHOW_DESKS = param("desks", "1") !== "0";

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
const desksOpen = document.getElementById("desks-open");
const desksOpenCount = document.getElementById("desks-open-count");
let newestKey = null;
let highlightTimer = null;
let firstRender = true;

function highlight() {
  nowCalling.classList.add("fresh");
  window.clearTimeout(highlightTimer);
  highlightTimer = window.setTimeout(() => nowCalling.classList.remove("fresh"), HIGHLIGHT_MS);
}

// The expected wait of a ticket taken now (/v1/lobby/waits), as a range; nothing when the service has
// too little to go on, so the screen never shows a guess it cannot stand behind.
const EXPECTED = { da: "Forventet ventetid", en: "Expected wait" };
const RANGE_TEXT = { under_5: "under 5 min", "5_10": "5-10 min", "10_20": "10-20 min", over_20: "over 20 min" };

function showExpected(item, estimate) {
  item.dataset.expected = estimate?.range || "hidden";
  if (!estimate?.range) return;
  const line = element("span", "expected-wait live-value", `${EXPECTED[mode === "en" ? "en" : "da"]}: `);
  line.append(element("strong", "", RANGE_TEXT[estimate.range]));
  if (secondary) line.append(" ", element("span", "en", `/ ${EXPECTED.en}`));
  item.append(line);
}

function render({ data, waits }) {
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
  const expected = new Map((waits?.queues || []).map((item) => [item.queue, item.expected_wait]));
  const desks = new Map(data.waiting.map((item) => [item.queue, item.desks_open ?? 0]));
  for (const queue of QUEUES || []) if (!waiting.has(queue)) waiting.set(queue, 0);
  const items = [...waiting.entries()].map(([queue, count]) => {
    const item = element("li");
    item.dataset.queue = queue;
    item.append(`${queueName(queue)}`, element("strong", "live-value", String(count)));
    // After the count of who is waiting, so the two numbers are never read as one.
    if (SHOW_DESKS && desks.get(queue)) {
      const open = element("span", "desks live-value", `· ${primary.desksIn(desks.get(queue))}`);
      open.dataset.field = "desks";
      item.append(open);
    }
    showExpected(item, expected.get(queue));
    return item;
  });
  waitingList.replaceChildren(...(items.length ? items : [element("li", "placeholder", primary.noWaiting)]));
  desksOpen.hidden = !SHOW_DESKS || data.desks_open === undefined;
  desksOpenCount.textContent = String(data.desks_open ?? 0);
}

async function fetchAll(signal) {
  const data = await getJson("/v1/lobby", { queue: QUEUES ? QUEUES.join(",") : null, limit: LIMIT + 1 }, signal);
  // An extra: without it (an older service, a failed read) the calls and counts still show.
  const waits = await getJson("/v1/lobby/waits", { queue: QUEUES ? QUEUES.join(",") : null }, signal).catch(() => null);
  return { asOf: data.as_of, data, waits };
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
bilingual(document.getElementById("desks-open-label"), (t) => t.desksOpen);
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
