// Shared by the wall screens: query-string options, authenticated polling, the connection banner,
// status icons and number formats. Plain ES module, no build step, nothing loaded from outside.

const query = new URLSearchParams(window.location.search);

export function param(name, fallback = null) {
  const value = query.get(name);
  return value === null || value.trim() === "" ? fallback : value.trim();
}

export function listParam(name) {
  const value = param(name);
  return value === null ? null : value.split(",").map((item) => item.trim()).filter(Boolean);
}

// Poll interval in ms from ?interval=; bounded so a typo can neither hammer the service nor freeze a screen.
export function pollInterval() {
  const value = Number(param("interval", "2000"));
  return Number.isFinite(value) ? Math.min(Math.max(value, 200), 60000) : 2000;
}

const token = param("token");

export class HttpError extends Error {
  constructor(status, text) {
    super(`HTTP ${status}: ${text}`);
    this.status = status;
  }
}

// A wall browser cannot set headers, so the page's own ?token= becomes the bearer token of every fetch.
export async function getJson(path, params, signal) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { headers, signal, cache: "no-store" });
  if (!response.ok) throw new HttpError(response.status, await response.text());
  return response.json();
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

// A shape per status as well as a colour, so the status reads without telling red from green.
const STATUS_SHAPES = {
  ok: '<circle cx="12" cy="12" r="10.5"/><path d="M6.5 12.5l3.7 3.7 7.3-8" class="mark"/>',
  warning: '<path d="M12 1.8 23 21.5H1z"/><path d="M12 8.5v6.2M12 17.6v.4" class="mark"/>',
  breach:
    '<path d="M7.2 1h9.6L23 7.2v9.6L16.8 23H7.2L1 16.8V7.2z"/><path d="M8 8l8 8M16 8l-8 8" class="mark"/>',
  no_data: '<circle cx="12" cy="12" r="10.5"/><path d="M7 12h10" class="mark"/>',
};

export function statusIcon(status) {
  const shape = STATUS_SHAPES[status] || STATUS_SHAPES.no_data;
  const wrapper = document.createElement("span");
  wrapper.className = `status-icon status-${status}`;
  wrapper.setAttribute("aria-hidden", "true");
  wrapper.innerHTML = `<svg viewBox="0 0 24 24">${shape}</svg>`;
  return wrapper;
}

export function formatPct(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value)} %`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const whole = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

// The service's own local time ("...T14:02:26+01:00" -> "14:02:26"): the centre's zone, whatever the browser's.
export function clockOf(isoTime) {
  return isoTime ? isoTime.slice(11, 19) : null;
}

export function hourMinuteOf(isoTime) {
  return isoTime.slice(11, 16);
}

// Polls fetchAll() every interval, one request at a time, and keeps <body data-connection> honest:
// "connecting" until the first data, "live", then "lost" after two failed polls or when the last good
// data is older than a few intervals (a hung request counts too), until a poll succeeds again.
export class Poller {
  constructor({ interval, fetchAll, render, banner, texts }) {
    this.interval = interval;
    this.fetchAll = fetchAll;
    this.render = render;
    this.banner = banner;
    this.texts = texts;
    this.timeout = Math.min(Math.max(2 * interval, 2000), 10000);
    this.staleAfter = Math.max(3 * interval, this.timeout + interval);
    this.failures = 0;
    this.polls = 0;
    this.lastGoodAt = null;
    this.lastAsOf = null;
    this.state = null;
  }

  start() {
    this.setState("connecting");
    this.tick();
    window.setInterval(() => this.watch(), 250);
  }

  get live() {
    return this.state === "live";
  }

  async tick() {
    const began = performance.now();
    try {
      const data = await this.fetchAll(AbortSignal.timeout(this.timeout));
      this.failures = 0;
      this.lastGoodAt = performance.now();
      this.lastAsOf = data.asOf;
      this.setState("live");
      this.render(data);
      this.polls += 1;
      document.body.dataset.polls = String(this.polls);
    } catch (error) {
      this.failures += 1;
      const denied = error instanceof HttpError && (error.status === 401 || error.status === 403);
      // One failed poll may be a blip; the second in a row is an outage.
      if (denied) this.setState("denied");
      else if (this.failures >= 2) this.setState("lost");
    }
    const wait = Math.max(0, this.interval - (performance.now() - began));
    window.setTimeout(() => this.tick(), wait);
  }

  watch() {
    if (this.state === "live" && performance.now() - this.lastGoodAt > this.staleAfter) this.setState("lost");
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    document.body.dataset.connection = state;
    document.body.classList.toggle("stale", state !== "live");
    const texts = this.texts;
    const since = clockOf(this.lastAsOf);
    let message = "";
    if (state === "connecting") message = texts.connecting;
    else if (state === "denied") message = texts.denied;
    else if (state === "lost") message = since ? texts.lostSince(since) : texts.lostNoData;
    this.banner.textContent = message;
    this.banner.hidden = state === "live";
  }
}
