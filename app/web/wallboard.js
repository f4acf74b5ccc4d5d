// The staff wallboard: a tile per channel and queue with today's service level against its goal,
// who is there to answer (staffed, available, on a contact, paused: /v1/staff), who is waiting now,
// the longest current wait (ticking between polls), arrivals, first-contact resolution, and a chart of
// the service level per 15-minute interval against the goal line.
//
// Query string: channel=phone,visit  queue=borgerservice,pas  total=1|0  interval=2000 (ms)
//               lang=da|en  token=<read token>

import {
  Poller,
  element,
  formatDuration,
  formatPct,
  getJson,
  hourMinuteOf,
  listParam,
  param,
  pollInterval,
  statusIcon,
  svg,
} from "./screens.js";

const TEXTS = {
  da: {
    title: "Servicemål i dag",
    channels: { phone: "Telefon", visit: "Fremmøde" },
    total: "I alt",
    goal: "Mål",
    within: "inden",
    status: { ok: "Over mål", warning: "Tæt på mål", breach: "Under mål", no_data: "Ingen data endnu" },
    waiting: "Venter nu",
    longest: "Længste ventetid",
    arrived: "Henvendelser i dag",
    fcr: "Løst ved 1. kontakt",
    crew: {
      phone: { staffed: "Logget ind", available: "Ledige", on_contact: "I samtale", paused: "Pause" },
      visit: { staffed: "Skranker", available: "Ledige", on_contact: "Betjener", paused: "Pause" },
    },
    goalShort: "mål",
    stale: "Forældet",
    noTiles: "Ingen køer med data endnu",
    connecting: "Forbinder …",
    denied: "Adgang nægtet: tjek token i adressen",
    lostSince: (time) => `Forbindelse afbrudt – tallene er fra kl. ${time} og ikke live`,
    lostNoData: "Forbindelse afbrudt – ingen data endnu",
  },
  en: {
    title: "Service levels today",
    channels: { phone: "Phone", visit: "In person" },
    total: "Total",
    goal: "Goal",
    within: "within",
    status: { ok: "On target", warning: "Near target", breach: "Below target", no_data: "No data yet" },
    waiting: "Waiting now",
    longest: "Longest wait",
    arrived: "Contacts today",
    fcr: "First-contact resolution",
    crew: {
      phone: { staffed: "Logged in", available: "Available", on_contact: "Talking", paused: "Paused" },
      visit: { staffed: "Desks open", available: "Available", on_contact: "Serving", paused: "Paused" },
    },
    goalShort: "goal",
    stale: "Stale",
    noTiles: "No queues with data yet",
    connecting: "Connecting …",
    denied: "Access denied: check the token in the address",
    lostSince: (time) => `Connection lost – figures are from ${time} and not live`,
    lostNoData: "Connection lost – no data yet",
  },
};

// Display names for the usual queues; any other queue shows its own name.
const QUEUE_NAMES = {
  borgerservice: "Borgerservice",
  pas: "Pas",
  koerekort: "Kørekort",
  pension: "Pension",
  sundhed: "Sundhedskort",
  skat: "Skat",
};

const lang = param("lang", "da") === "en" ? "en" : "da";
const T = TEXTS[lang];
const CHANNELS = (listParam("channel") || ["phone", "visit"]).filter((name) => name in T.channels);
const QUEUES = listParam("queue");
const SHOW_TOTAL = param("total", QUEUES ? "0" : "1") !== "0";
const INTERVAL = pollInterval();
const DAY_START_SLOT = 8 * 4; // the chart shows at least 08:00-16:00, the usual opening hours
const DAY_END_SLOT = 16 * 4;

function queueName(queue) {
  if (queue === null) return T.total;
  return QUEUE_NAMES[queue] || queue.charAt(0).toUpperCase() + queue.slice(1).replace(/[-_]/g, " ");
}

function thresholdText(seconds) {
  return seconds % 60 === 0 && seconds >= 120 ? `${seconds / 60} min` : `${seconds} s`;
}

function wantedTiles(kpis) {
  const tiles = [];
  for (const channel of CHANNELS) {
    const data = kpis.channels[channel];
    if (!data) continue;
    if (SHOW_TOTAL) tiles.push({ channel, queue: null, figures: data.total });
    const names = QUEUES
      ? QUEUES.filter((name) => name in data.queues || listParam("channel"))
      : Object.keys(data.queues).sort();
    for (const name of names) tiles.push({ channel, queue: name, figures: data.queues[name] || null });
  }
  return tiles;
}

class Tile {
  constructor(channel, queue) {
    this.channel = channel;
    this.queue = queue;
    this.key = `${channel}/${queue ?? "*"}`;
    this.longestBase = null;
    this.receivedAt = 0;
    this.intervals = null;

    const root = element("section", "tile tile-no_data");
    root.dataset.key = this.key;
    const head = element("div", "tile-head");
    const title = element("h2");
    title.append(element("span", "channel", `${T.channels[channel]} · `), queueName(queue));
    head.append(title, element("span", "stale-badge", T.stale));

    const headline = element("div", "headline");
    this.icon = element("span");
    this.level = element("span", "level live-value");
    this.level.dataset.field = "level";
    const goal = element("div", "goal");
    this.statusText = element("span", "status-text live-value");
    this.goalText = element("span");
    this.withinText = element("span");
    goal.append(this.statusText, this.goalText, this.withinText);
    headline.append(this.icon, this.level, goal);

    // Who is there to answer, in type as large as the stats: staffed, available, on a contact, paused.
    const crew = element("div", "crew");
    this.crew = {};
    for (const [field, label] of Object.entries(T.crew[channel])) {
      const box = element("div", `crew-stat crew-${field}`);
      const line = element("div", "crew-line");
      const value = element("span", "value live-value", "–");
      value.dataset.field = field;
      line.append(value);
      if (field === "staffed") {
        // Left empty here: the staffing advice (issue 16) puts "needed N-M" beside the staffed count.
        this.needed = element("span", "needed live-value");
        this.needed.dataset.field = "needed";
        line.append(this.needed);
      }
      box.append(element("span", "label", label), line);
      crew.append(box);
      this.crew[field] = value;
    }

    const stats = element("div", "stats");
    const stat = (field, label) => {
      const box = element("div", "stat");
      const value = element("span", "value live-value");
      value.dataset.field = field;
      box.append(element("span", "label", label), value);
      stats.append(box);
      return value;
    };
    this.waiting = stat("waiting", T.waiting);
    this.longest = stat("longest", T.longest);
    this.arrived = stat("arrived", T.arrived);
    this.fcr = stat("fcr", T.fcr);

    const chartBox = element("div", "chart-box");
    this.chart = svg("svg", { class: "chart", role: "img" });
    chartBox.append(this.chart);
    root.append(head, headline, crew, stats, chartBox);
    this.root = root;
  }

  update(figures, intervals, staff) {
    const status = figures ? figures.status : "no_data";
    this.root.className = `tile tile-${status}`;
    this.root.dataset.status = status;
    this.icon.replaceChildren(statusIcon(status));
    const level = figures?.service_level_pct ?? null;
    // A smaller percent sign keeps "100 %" clear of the goal beside it on a narrow tile.
    if (level === null) this.level.replaceChildren(formatPct(null));
    else this.level.replaceChildren(String(Math.round(level)), element("span", "unit", " %"));
    this.level.className = `level live-value status-${status}`;
    this.statusText.textContent = T.status[status];
    this.statusText.className = `status-text live-value status-${status}`;
    const target = intervals.target;
    this.goalText.replaceChildren(`${T.goal} `, element("strong", "", formatPct(target.goal_pct)));
    this.withinText.textContent = `${T.within} ${thresholdText(target.threshold_seconds)}`;
    this.waiting.textContent = String(figures?.waiting_now ?? 0);
    this.longestBase = figures?.longest_wait_now_seconds ?? null;
    this.receivedAt = performance.now();
    this.tick();
    this.arrived.textContent = String(figures?.arrived ?? 0);
    const fcr = figures?.first_contact_resolution_pct ?? null;
    this.fcr.replaceChildren(formatPct(fcr));
    // No staff figures for the queue (no staff time today, e.g. its source sends no staff events): a
    // dash, never a made-up 0.
    for (const [field, value] of Object.entries(this.crew)) {
      value.textContent = staff ? String(staff[field] ?? 0) : "–";
    }
    if (fcr !== null) this.fcr.append(statusIcon(figures.first_contact_resolution_status));
    this.intervals = intervals;
    this.drawChart();
  }

  // "needed N-M" beside the staffed count: the staffing advice's 95 % range for the queue (/v1/staffing);
  // empty when there is no advice (too little data) and on a channel total, where queues do not add up.
  showNeeded(needed) {
    if (!this.needed) return;
    const text = !needed ? "" : needed.low === needed.high ? String(needed.low) : `${needed.low}-${needed.high}`;
    this.needed.textContent = text ? `${NEEDED_TEXT[lang] || NEEDED_TEXT.en} ${text}` : "";
  }

  // Between polls the longest wait keeps counting from the last good value (only while live).
  tick() {
    if (this.longestBase === null) {
      this.longest.textContent = "–";
      return;
    }
    const elapsed = (performance.now() - this.receivedAt) / 1000;
    this.longest.textContent = formatDuration(this.longestBase + elapsed);
  }

  drawChart() {
    const data = this.intervals;
    if (!data) return;
    const box = this.chart.getBoundingClientRect();
    const width = Math.max(box.width, 50);
    const height = Math.max(box.height, 30);
    const rem = parseFloat(getComputedStyle(document.documentElement).fontSize);
    const pad = { left: 2.6 * rem, right: 1.1 * rem, top: 0.5 * rem, bottom: 1.5 * rem };
    const intervals = data.intervals;
    const firstWithData = intervals.findIndex((item) => item.arrived > 0 || item.service_level_pct !== null);
    const startSlot = Math.min(DAY_START_SLOT, firstWithData < 0 ? DAY_START_SLOT : firstWithData - (firstWithData % 4));
    const endSlot = Math.max(DAY_END_SLOT, intervals.length);
    const slots = endSlot - startSlot;
    const plotWidth = width - pad.left - pad.right;
    const plotHeight = height - pad.top - pad.bottom;
    const slotWidth = plotWidth / slots;
    const x = (slot) => pad.left + (slot - startSlot) * slotWidth;
    const y = (pct) => pad.top + plotHeight * (1 - pct / 100);

    const nodes = [];
    for (const pct of [0, 50, 100]) {
      nodes.push(svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(pct), y2: y(pct) }));
      const label = svg("text", { x: pad.left - 0.4 * rem, y: y(pct) + 0.35 * rem, "text-anchor": "end" });
      label.textContent = `${pct}`;
      nodes.push(label);
    }
    const lastLabel = intervals.length ? hourMinuteOf(intervals[intervals.length - 1].start) : "00:00";
    const labelOf = (slot) => {
      if (slot < intervals.length) return hourMinuteOf(intervals[slot].start);
      const [hours, minutes] = lastLabel.split(":").map(Number);
      const total = hours * 60 + minutes + (slot - intervals.length + 1) * 15;
      return `${String(Math.floor(total / 60) % 24).padStart(2, "0")}:${String(total % 60).padStart(2, "0")}`;
    };
    const hourStep = slots > 40 ? 2 : 1;
    for (let slot = startSlot; slot <= endSlot; slot += 1) {
      const text = labelOf(slot);
      if (!text.endsWith(":00") || Number(text.slice(0, 2)) % hourStep !== 0) continue;
      const label = svg("text", { x: x(slot), y: height - 0.3 * rem, "text-anchor": "middle" });
      label.textContent = text.slice(0, 2);
      nodes.push(label);
    }
    const gap = Math.min(2, slotWidth * 0.15);
    intervals.forEach((item, slot) => {
      if (slot < startSlot) return;
      const level = item.service_level_pct;
      if (level === null) {
        nodes.push(svg("rect", { class: "empty", x: x(slot) + gap / 2, y: y(0) - 2, width: slotWidth - gap, height: 2 }));
        return;
      }
      const bar = svg("rect", {
        class: `bar status-${item.status}${item.current ? " current" : ""}`,
        x: x(slot) + gap / 2,
        y: y(level),
        width: Math.max(slotWidth - gap, 1),
        height: Math.max(y(0) - y(level), 2),
      });
      bar.dataset.start = item.start;
      bar.dataset.level = String(level);
      nodes.push(bar);
    });
    const goal = data.target.goal_pct;
    nodes.push(svg("line", { class: "goal-line", x1: pad.left, x2: width - pad.right, y1: y(goal), y2: y(goal) }));
    const goalLabel = svg("text", { class: "goal-label", x: width - pad.right, y: y(goal) - 0.3 * rem, "text-anchor": "end" });
    goalLabel.textContent = `${T.goalShort} ${formatPct(goal)}`;
    nodes.push(goalLabel);
    this.chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.chart.replaceChildren(...nodes);
  }
}

const tilesRoot = document.getElementById("tiles");
let zone = "Europe/Copenhagen";
const tiles = new Map();

function layout(count) {
  const columns = count <= 3 ? Math.max(count, 1) : count === 4 ? 2 : count <= 6 ? 3 : 4;
  const rows = Math.max(1, Math.ceil(count / columns));
  tilesRoot.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
  tilesRoot.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
}

async function fetchAll(signal) {
  const single = CHANNELS.length === 1 ? CHANNELS[0] : null;
  const kpis = await getJson("/v1/kpis", { window: "today", channel: single }, signal);
  const wanted = wantedTiles(kpis);
  const [staff, ...intervals] = await Promise.all([
    // today: a queue whose agents all left an hour ago still shows 0 staffed, not a dash.
    getJson("/v1/staff", { window: "today", channel: single }, signal),
    ...wanted.map((tile) => getJson("/v1/kpis/intervals", { channel: tile.channel, queue: tile.queue }, signal)),
  ]);
  // The advice is an extra: a reader that may not see it (or an older service) still gets the tiles.
  const staffing = await getJson("/v1/staffing", {}, signal).catch(() => null);
  return { asOf: kpis.as_of, timeZone: kpis.time_zone, wanted, intervals, staff, staffing };
}

const NEEDED_TEXT = { da: "behov", en: "needed" };

function neededOf(staffing, tile) {
  if (!staffing || tile.queue === null) return null;
  return staffing.queues?.[tile.channel]?.[tile.queue]?.needed || null;
}

// The tile's staff figures: the queue's, or the channel's total (each agent counted once).
function staffOf(staff, tile) {
  const channel = staff?.channels?.[tile.channel];
  if (!channel) return null;
  if (tile.queue === null) return Object.keys(channel.queues).length ? channel.total : null;
  return channel.queues[tile.queue] || null;
}

function render({ wanted, intervals, timeZone, staff, staffing }) {
  zone = timeZone;
  const keys = wanted.map((tile) => `${tile.channel}/${tile.queue ?? "*"}`);
  if (keys.join("|") !== [...tiles.keys()].join("|")) {
    const next = new Map();
    for (const [index, tile] of wanted.entries()) {
      next.set(keys[index], tiles.get(keys[index]) || new Tile(tile.channel, tile.queue));
    }
    tiles.clear();
    for (const [key, tile] of next) tiles.set(key, tile);
    layout(tiles.size);
    tilesRoot.replaceChildren(...[...tiles.values()].map((tile) => tile.root));
    if (!tiles.size) tilesRoot.append(element("p", "empty-note", T.noTiles));
  }
  wanted.forEach((tile, index) => tiles.get(keys[index]).update(tile.figures, intervals[index], staffOf(staff, tile)));
  wanted.forEach((tile, index) => tiles.get(keys[index]).showNeeded(neededOf(staffing, tile)));
}

const clock = document.getElementById("clock");
function showClock() {
  clock.textContent = new Date().toLocaleTimeString("da-DK", { timeZone: zone, hour: "2-digit", minute: "2-digit" });
}

document.documentElement.lang = lang;
document.getElementById("title").textContent = T.title;
document.title = `queuepulse – ${T.title}`;
const poller = new Poller({
  interval: INTERVAL,
  fetchAll,
  render,
  banner: document.getElementById("connection"),
  texts: T,
});
poller.start();
showClock();
window.setInterval(() => {
  // Stale figures stand still: a ticking number would look live.
  if (poller.live) for (const tile of tiles.values()) tile.tick();
  showClock();
}, 250);
window.addEventListener("resize", () => {
  for (const tile of tiles.values()) tile.drawChart();
});
