// The managers' history page: one fetch of /v1/reports, an inline SVG chart and a table. No outside code.
(() => {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f5fa8", "#c77700", "#6a3d9a", "#00838f", "#8d6e63", "#ad1457"];
  const page = new URLSearchParams(location.search);
  // Same convention as the wall screens: a read token travels in the page URL, never in a cookie.
  const token = page.get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const form = document.getElementById("controls");
  const queueBox = document.getElementById("queues");
  const errorBox = document.getElementById("error");
  const csvLink = document.getElementById("csv");
  let known = [];

  const pad = (n) => String(n).padStart(2, "0");
  const isoDay = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const pct = (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + " %");
  const num = (v) => (v === null || v === undefined ? "–" : v.toLocaleString("en-GB"));
  // Agents' and desks' hours (staffed, handling): one decimal, as a rota shows them.
  const hours = (h) => (h === null || h === undefined ? "–" : h.toFixed(1) + " h");
  const wait = (s) => (s === null || s === undefined ? "–" : `${Math.floor(s / 60)}:${pad(Math.round(s % 60))}`);

  function initialise() {
    const now = new Date();
    form.granularity.value = page.get("granularity") || "month";
    form.to.value = page.get("to") || isoDay(now);
    form.from.value = page.get("from") || `${form.to.value.slice(0, 4)}-01-01`;
    form.channel.value = page.get("channel") || "phone";
    known = (page.get("queue") || "").split(",").filter(Boolean);
  }

  function chosenQueues() {
    return [...queueBox.querySelectorAll("input:checked")].map((box) => box.value);
  }

  function query(format) {
    const q = new URLSearchParams({
      granularity: form.granularity.value,
      from: form.from.value,
      to: form.to.value,
      channel: form.channel.value,
    });
    const all = queueBox.querySelectorAll("input").length;
    const chosen = chosenQueues();
    if (chosen.length && chosen.length < all) q.set("queue", chosen.join(","));
    if (format) q.set("format", format);
    return q;
  }

  function renderQueues(names) {
    const before = new Set(queueBox.querySelectorAll("input").length ? chosenQueues() : known.length ? known : names);
    queueBox.querySelectorAll("label").forEach((label) => label.remove());
    for (const name of names) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "queue";
      box.value = name;
      box.checked = before.has(name);
      label.append(box, " " + name);
      queueBox.append(label);
    }
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderChart(rows, queues) {
    const totals = rows.filter((r) => r.queue === null);
    const box = document.getElementById("chart");
    box.replaceChildren();
    const legend = document.getElementById("legend");
    legend.replaceChildren();
    if (!totals.length) {
      box.textContent = "No data in this range.";
      return;
    }
    const width = 1000, height = 300, left = 46, right = 64, top = 14, bottom = 30;
    const plotW = width - left - right, plotH = height - top - bottom;
    const band = plotW / totals.length;
    const y = (v) => top + plotH * (1 - v / 100);
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "service level per period" });
    for (const tick of [0, 20, 40, 60, 80, 100]) {
      svg.append(el("line", { class: tick ? "grid" : "axis", x1: left, x2: width - right, y1: y(tick), y2: y(tick) }));
      svg.append(el("text", { class: "label", x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, tick + " %"));
    }
    const every = Math.ceil(totals.length / 24);
    totals.forEach((row, i) => {
      const x = left + i * band;
      const level = row.service_level_pct;
      if (level !== null) {
        const bar = el("rect", {
          class: "bar " + (row.goal_met ? "met" : "missed"),
          x: x + band * 0.2, width: band * 0.6, y: y(level), height: y(0) - y(level),
        });
        bar.append(el("title", {}, `${row.period}: ${pct(level)} (goal ${row.goal_pct} %)`));
        svg.append(bar);
        if (band >= 34) {
          svg.append(el("text", { class: "value", x: x + band / 2, y: y(level) - 4, "text-anchor": "middle" }, level.toFixed(1)));
        }
      }
      if (i % every === 0) {
        svg.append(el("text", { class: "label", x: x + band / 2, y: height - bottom + 16, "text-anchor": "middle" }, row.period));
      }
    });
    const goal = totals[0].goal_pct;
    svg.append(el("line", { class: "goal", x1: left, x2: width - right, y1: y(goal), y2: y(goal) }));
    svg.append(el("text", { class: "value", x: width - right + 6, y: y(goal) + 4 }, `goal ${goal} %`));
    queues.slice(0, COLORS.length).forEach((name, index) => {
      let path = "";
      totals.forEach((total, i) => {
        const row = rows.find((r) => r.queue === name && r.period === total.period);
        const level = row ? row.service_level_pct : null;
        if (level === null) return;
        path += `${path && !path.endsWith(" ") ? " L" : " M"}${left + i * band + band / 2},${y(level)}`;
      });
      if (path) svg.append(el("path", { class: "queue-line", d: path.trim(), stroke: COLORS[index] }));
    });
    box.append(svg);
    const channel = totals[0].channel;
    const items = [["var(--ok)", `${channel} total, goal met`], ["var(--miss)", `${channel} total, goal missed`]];
    queues.slice(0, COLORS.length).forEach((name, index) => items.push([COLORS[index], name]));
    for (const [color, text] of items) {
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      legend.append(swatch, text);
    }
  }

  function renderTable(rows) {
    const body = document.querySelector("#table tbody");
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      if (row.queue === null) tr.className = "total";
      const cells = [
        row.period, row.queue === null ? `${row.channel} total` : row.queue, num(row.arrived), num(row.started),
        num(row.started_within_target), pct(row.service_level_pct), row.goal_pct + " %",
        row.goal_met === null ? "–" : row.goal_met ? "yes" : "no", pct(row.abandon_rate_pct),
        wait(row.avg_wait_seconds), pct(row.first_contact_resolution_pct),
        hours(row.staffed_hours), hours(row.handled_hours),
        row.occupancy === null || row.occupancy === undefined ? "–" : pct(100 * row.occupancy),
      ];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i === 7 && row.goal_met !== null) td.className = row.goal_met ? "met" : "missed";
        tr.append(td);
      });
      body.append(tr);
    }
  }

  async function load() {
    document.body.dataset.state = "loading";
    errorBox.hidden = true;
    const q = query();
    try {
      const response = await fetch("/v1/reports?" + q, { headers });
      if (!response.ok) {
        const detail = await response.json().catch(() => ({}));
        throw new Error(`${response.status}: ${JSON.stringify(detail.detail || detail)}`);
      }
      const data = await response.json();
      renderQueues(data.queues[form.channel.value] || []);
      const chosen = chosenQueues();
      const rows = data.rows.filter((r) => r.queue === null || chosen.includes(r.queue));
      document.getElementById("subtitle").textContent = `· ${form.channel.value} · ${data.from} to ${data.to}`;
      document.getElementById("meta").textContent =
        `Per ${data.granularity}, local time ${data.time_zone}. Generated ${data.generated_at}.`;
      document.getElementById("chart-title").textContent =
        `Service level per ${data.granularity} against the goal (${form.channel.value})`;
      renderChart(rows, chosen);
      renderTable(rows);
      csvLink.href = "/v1/reports?" + query("csv");
      const shown = query();
      if (token) shown.set("token", token);
      history.replaceState(null, "", "?" + shown);
      document.body.dataset.state = "ready";
    } catch (error) {
      errorBox.textContent = "Could not load the report: " + error.message;
      errorBox.hidden = false;
      document.body.dataset.state = "error";
    }
  }

  window.csvDownload(csvLink, token, headers, () => "queuepulse-report.csv");
  document.getElementById("print").addEventListener("click", () => window.print());
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  form.channel.addEventListener("change", () => { queueBox.querySelectorAll("label").forEach((l) => l.remove()); known = []; load(); });
  initialise();
  load();
})();
