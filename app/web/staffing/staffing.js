// The staffing page: the week's contact pattern as a heat map (weekday x quarter-hour) and the agents
// needed per quarter-hour against those staffed, from /v1/staffing/plan; the lobby estimate's accuracy
// from /v1/lobby/waits/accuracy. Inline SVG, no outside code, printable.
(() => {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const page = new URLSearchParams(location.search);
  // Same convention as the wall screens and the report page: a read token travels in the page URL.
  const token = page.get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const form = document.getElementById("controls");
  const errorBox = document.getElementById("error");
  const csvLink = document.getElementById("csv");
  let wantedQueue = page.get("queue") || "";

  const pad = (n) => String(n).padStart(2, "0");
  const isoDay = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const num = (v, digits = 1) => (v === null || v === undefined ? "–" : v.toFixed(digits));
  const minutes = (s) => (s === null || s === undefined ? "–" : `${Math.floor(s / 60)}:${pad(Math.round(s % 60))}`);
  // The local clock time of a slot, as the plan gives it ("2026-12-01T08:15:00+01:00" -> "08:15").
  const clock = (start) => start.slice(11, 16);

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function initialise() {
    form.date.value = page.get("date") || isoDay(new Date());
    form.channel.value = page.get("channel") || "phone";
  }

  async function getJson(path, params) {
    const response = await fetch(path + "?" + new URLSearchParams(params), { headers });
    if (!response.ok) {
      const detail = await response.json().catch(() => ({}));
      throw new Error(`${response.status}: ${JSON.stringify(detail.detail || detail)}`);
    }
    return response.json();
  }

  function mondayOf(day) {
    const date = new Date(day + "T12:00:00");
    date.setDate(date.getDate() - ((date.getDay() + 6) % 7));
    return date;
  }

  // The span of clock times worth drawing: whole hours around every slot with arrivals, a need or staff.
  function activeSpan(plans) {
    let first = null, last = null;
    for (const plan of plans) {
      for (const row of plan ? plan.intervals : []) {
        // Not the range's high end: a quarter-hour with no contacts in eight weeks still has one at 95 %.
        if (row.arrivals > 0 || (row.needed && row.needed.point > 0) || row.staffed > 0 || row.staffed_usual > 0) {
          const time = clock(row.start);
          if (first === null || time < first) first = time;
          if (last === null || time > last) last = time;
        }
      }
    }
    if (first === null) return null;
    const times = [];
    for (let h = Number(first.slice(0, 2)); h <= Number(last.slice(0, 2)); h++) {
      for (const m of ["00", "15", "30", "45"]) times.push(`${pad(h)}:${m}`);
    }
    return times;
  }

  function heat(value, max) {
    // White to deep blue; a cell with no contacts at all stays white.
    const t = max > 0 ? Math.sqrt(value / max) : 0;
    const mix = (a, b) => Math.round(a + (b - a) * t);
    return `rgb(${mix(255, 16)},${mix(255, 70)},${mix(255, 140)})`;
  }

  function renderHeatmap(week, queue) {
    const box = document.getElementById("heatmap");
    box.replaceChildren();
    const plans = week.map((body) => (body.queues[form.channel.value] || {})[queue] || null);
    const times = activeSpan(plans);
    const legend = document.getElementById("heat-legend");
    legend.replaceChildren();
    if (!times) {
      box.textContent = "No contacts in the baseline weeks for this queue.";
      return;
    }
    const byDay = plans.map((plan) => {
      const cells = new Map();
      for (const row of plan ? plan.intervals : []) cells.set(clock(row.start), row.arrivals);
      return cells;
    });
    const max = Math.max(0, ...byDay.flatMap((cells) => [...cells.values()]));
    const left = 44, top = 6, cellH = 22, bottom = 22;
    const cellW = Math.max(6, Math.min(24, 940 / times.length));
    const width = left + cellW * times.length + 10;
    const height = top + cellH * 7 + bottom;
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "mean arrivals per weekday and quarter-hour" });
    week.forEach((body, day) => {
      const y = top + day * cellH;
      svg.append(el("text", { class: "label", x: left - 6, y: y + cellH / 2 + 4, "text-anchor": "end" }, WEEKDAYS[day]));
      times.forEach((time, i) => {
        const value = byDay[day].get(time) ?? 0;
        const cell = el("rect", {
          class: "cell", x: left + i * cellW, y, width: cellW - 1, height: cellH - 1, fill: heat(value, max),
          "data-weekday": WEEKDAYS[day], "data-time": time, "data-arrivals": String(value),
        });
        cell.append(el("title", {}, `${WEEKDAYS[day]} ${body.date} ${time}: ${value} contacts on average`));
        svg.append(cell);
      });
    });
    times.forEach((time, i) => {
      if (time.endsWith(":00")) {
        svg.append(el("text", { class: "label", x: left + i * cellW, y: height - 6 }, time.slice(0, 2)));
      }
    });
    box.append(svg);
    for (const [value, text] of [[0, "none"], [max / 4, num(max / 4)], [max, `${num(max)} contacts a quarter-hour`]]) {
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = heat(value, max);
      legend.append(swatch, text);
    }
    const days = week.map((body) => ((body.queues[form.channel.value] || {})[queue] || {}).days_used ?? 0);
    document.getElementById("pattern-note").textContent =
      `Mean arrivals per quarter-hour (short abandons left out) over the same weekday of the last ${week[0].weeks} weeks; ` +
      `days with traffic used per weekday: ${WEEKDAYS.map((d, i) => `${d} ${days[i]}`).join(", ")}.`;
  }

  function renderPlan(plan, day) {
    const chart = document.getElementById("plan-chart");
    const body = document.querySelector("#plan-table tbody");
    const legend = document.getElementById("plan-legend");
    chart.replaceChildren();
    body.replaceChildren();
    legend.replaceChildren();
    const note = document.getElementById("staffed-note");
    if (!plan) {
      chart.textContent = "No plan for this queue on this day.";
      note.textContent = "";
      return;
    }
    const times = activeSpan([plan]) || [];
    const rows = plan.intervals.filter((row) => times.includes(clock(row.start)));
    const anyStaffed = rows.some((row) => row.staffed !== null);
    const anyUsual = rows.some((row) => row.staffed_usual !== null);
    document.body.dataset.staffed = anyStaffed ? "known" : anyUsual ? "usual" : "unknown";
    note.textContent = anyStaffed
      ? "Staffed: agents (desks) logged in on average over each quarter-hour of this day, from the staff events."
      : anyUsual
        ? "Staffed on this day is not known yet; the dashed line is what the same weekday usually had."
        : "Staffed is unknown: no agent or desk events have been received for this queue.";
    const highest = Math.max(1, ...rows.map((row) => Math.max(row.needed ? row.needed.high : 0, row.staffed ?? 0, row.staffed_usual ?? 0)));
    const width = 1000, height = 260, left = 40, right = 10, top = 10, bottom = 26;
    const band = (width - left - right) / Math.max(1, rows.length);
    const y = (v) => top + (height - top - bottom) * (1 - v / highest);
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "agents needed and staffed per quarter-hour" });
    const step = Math.max(1, Math.ceil(highest / 6));
    for (let tick = 0; tick <= highest; tick += step) {
      svg.append(el("line", { class: tick ? "grid" : "axis", x1: left, x2: width - right, y1: y(tick), y2: y(tick) }));
      svg.append(el("text", { class: "label", x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, String(tick)));
    }
    let staffedPath = "", usualPath = "";
    rows.forEach((row, i) => {
      const x = left + i * band;
      if (row.needed) {
        const range = el("rect", { class: "range", x: x + band * 0.15, width: band * 0.7, y: y(row.needed.high), height: Math.max(1, y(row.needed.low) - y(row.needed.high)) });
        range.append(el("title", {}, `${clock(row.start)}: ${row.needed.low}-${row.needed.high} needed (${row.needed.point} at the mean rate)`));
        svg.append(range);
        svg.append(el("line", { class: "point", x1: x + band * 0.15, x2: x + band * 0.85, y1: y(row.needed.point), y2: y(row.needed.point) }));
      }
      if (row.staffed !== null) staffedPath += `${staffedPath ? " L" : "M"}${x},${y(row.staffed)} L${x + band},${y(row.staffed)}`;
      if (row.staffed_usual !== null) usualPath += `${usualPath ? " L" : "M"}${x},${y(row.staffed_usual)} L${x + band},${y(row.staffed_usual)}`;
      if (clock(row.start).endsWith(":00")) {
        svg.append(el("text", { class: "label", x, y: height - 8 }, clock(row.start)));
      }
    });
    if (usualPath) svg.append(el("path", { class: "usual", d: usualPath }));
    if (staffedPath) svg.append(el("path", { class: "staffed", d: staffedPath }));
    chart.append(svg);
    const items = [["var(--need)", "needed: 95 % range, line at the mean rate"]];
    if (anyStaffed) items.push(["var(--staff)", "staffed"]);
    if (anyUsual) items.push(["var(--staff)", "usually staffed (dashed)"]);
    for (const [color, text] of items) {
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      legend.append(swatch, text);
    }
    for (const row of rows) {
      const tr = document.createElement("tr");
      tr.dataset.time = clock(row.start);
      const needed = row.needed;
      const cells = [
        clock(row.start), num(row.arrivals, 2), minutes(row.handle_seconds),
        needed ? String(needed.point) : "–", needed ? `${needed.low}-${needed.high}` : "–",
        row.staffed === null ? "unknown" : num(row.staffed), row.staffed_usual === null ? "unknown" : num(row.staffed_usual),
        row.reason || "",
      ];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i === 5 && needed && row.staffed !== null) td.className = row.staffed < needed.low ? "short" : "covered";
        tr.append(td);
      });
      body.append(tr);
    }
    document.getElementById("plan-title").textContent =
      `Agents needed per quarter-hour against those staffed · ${day}`;
  }

  function renderAccuracy(data) {
    const body = document.querySelector("#accuracy-table tbody");
    body.replaceChildren();
    if (!data.days.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 5;
      td.textContent = "No lobby estimate scored in these days.";
      tr.append(td);
      body.append(tr);
    }
    for (const row of data.days) {
      const tr = document.createElement("tr");
      tr.dataset.queue = row.queue;
      for (const text of [row.date, row.queue, String(row.scored), `${num(row.inside_range_pct)} %`, `${num(row.mean_abs_error_minutes, 2)} min`]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      body.append(tr);
    }
  }

  async function load() {
    document.body.dataset.state = "loading";
    errorBox.hidden = true;
    const channel = form.channel.value;
    const day = form.date.value;
    try {
      const chosen = await getJson("/v1/staffing/plan", { date: day, channel });
      const names = Object.keys(chosen.queues[channel] || {});
      const queue = names.includes(wantedQueue) ? wantedQueue : names[0] || "";
      form.queue.replaceChildren(...names.map((name) => new Option(name, name, false, name === queue)));
      const monday = mondayOf(day);
      const dates = WEEKDAYS.map((_, i) => {
        const date = new Date(monday);
        date.setDate(monday.getDate() + i);
        return isoDay(date);
      });
      const week = await Promise.all(
        dates.map((date) => (date === day ? chosen : getJson("/v1/staffing/plan", { date, channel, ...(queue ? { queue } : {}) }))),
      );
      document.getElementById("subtitle").textContent = `· ${channel}${queue ? " · " + queue : ""}`;
      document.getElementById("meta").textContent =
        `Target per queue, occupancy capped at ${chosen.max_occupancy_pct} %, local time ${chosen.time_zone}. Generated ${chosen.generated_at}.`;
      document.getElementById("pattern-title").textContent = `The contact pattern of the week of ${dates[0]}`;
      renderHeatmap(week, queue);
      renderPlan((chosen.queues[channel] || {})[queue] || null, day);
      renderAccuracy(await getJson("/v1/lobby/waits/accuracy", {}));
      const csv = new URLSearchParams({ date: day, channel, format: "csv" });
      if (queue) csv.set("queue", queue);
      csvLink.href = "/v1/staffing/plan?" + csv;
      const shown = new URLSearchParams({ date: day, channel });
      if (queue) shown.set("queue", queue);
      if (token) shown.set("token", token);
      history.replaceState(null, "", "?" + shown);
      document.body.dataset.state = "ready";
    } catch (error) {
      errorBox.textContent = "Could not load the staffing plan: " + error.message;
      errorBox.hidden = false;
      document.body.dataset.state = "error";
    }
  }

  window.csvDownload(csvLink, token, headers, () => `queuepulse-staffing-${form.date.value}.csv`);
  document.getElementById("print").addEventListener("click", () => window.print());
  form.addEventListener("submit", (event) => { event.preventDefault(); wantedQueue = form.queue.value; load(); });
  form.channel.addEventListener("change", () => { wantedQueue = ""; load(); });
  form.queue.addEventListener("change", () => { wantedQueue = form.queue.value; load(); });
  initialise();
  load();
})();
