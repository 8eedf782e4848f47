/* The grid view: Chart.js charts drawn from the day the portal keeps (board samples in the /grid
   snapshot, sold auctions, the interval market's clearing prices from GET /api/intervals), then
   extended by pushes; every time axis is the emulated (market) clock's. */
import { api } from "./api.js";
import { loadChart } from "./lazy.js";
import { $, el, formatEther, intervalTime, toast } from "./util.js";

/* global Chart */

const KEEP_S = 86400;  // emulated seconds kept on the charts: the day the portal keeps too
/* Colours and dashes told apart without colour as well (a line under another still shows). */
const COLORS = ["#0b7a53", "#b3261e", "#1f5fbf", "#c07a00", "#6a3fb5", "#00838f", "#5b6676"];
const DASHES = [[], [6, 3], [2, 2], [10, 3, 2, 3], [4, 4], [12, 4], [1, 3]];
const STEPS = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
let charts = {};
let samplesSeen = 0;
let timeFactor = 1;  // emulated seconds per market-clock second (the emulator's speed)

/* Every x is emulated seconds: the emulator's time of day, or the clock's at 1×. */
function clockText(seconds) { return intervalTime(seconds, timeFactor); }

/* Ticks on whole minutes/hours, few enough for the width that no two labels touch. */
function timeTicks(scale) {
  const room = Math.max(2, Math.floor(scale.width / 72));  // "00:00" plus space, in px
  const span = scale.max - scale.min;
  if (!Number.isFinite(span) || span <= 0) return;  // nothing drawn yet: Chart.js's own
  // Past a day a tick: whole days, still no more than fit (never millions of them).
  const step = STEPS.find((s) => span / s <= room) || Math.ceil(span / room / 86400) * 86400;
  const ticks = [];
  for (let v = Math.ceil(scale.min / step) * step; v <= scale.max; v += step) ticks.push({ value: v });
  scale.ticks = ticks;
}

function lineChart(id, yTitle, options = {}) {
  return new Chart($(id), {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      normalized: true, spanGaps: false,
      scales: {
        x: { type: "linear", afterBuildTicks: timeTicks,
          ticks: { callback: clockText, autoSkip: true, autoSkipPadding: 12, maxRotation: 0, minRotation: 0 } },
        y: { title: { display: true, text: yTitle }, beginAtZero: true, ...(options.y || {}) },
      },
      plugins: { legend: { position: "bottom", labels: { usePointStyle: false, boxHeight: 2 } },
        tooltip: { callbacks: { title: (items) => clockText(items[0].parsed.x) } } },
      elements: { point: { radius: options.points ? 3 : 0 }, line: { borderWidth: 2 } },
    },
  });
}

/* The dataset of a chart for one series, made on first sight. */
function series(chart, label) {
  let set = chart.data.datasets.find((d) => d.label === label);
  if (!set) {
    const i = chart.data.datasets.length;
    const color = COLORS[i % COLORS.length];
    set = { label, data: [], borderColor: color, backgroundColor: color,
      borderDash: DASHES[i % DASHES.length], pointStyle: ["circle", "rect", "triangle", "rectRot", "star", "cross"][i % 6] };
    chart.data.datasets.push(set);
  }
  return set;
}

function push(chart, label, t, y) {
  const set = series(chart, label);
  const last = set.data[set.data.length - 1];
  if (last && last.x > t) return;  // history and live overlap: the kept day is older
  if (last && last.x === t) {  // the same emulated instant (a stopped clock): the newer reading
    last.y = y;
    return;
  }
  set.data.push({ x: t, y });
  while (set.data.length && set.data[0].x < t - KEEP_S) set.data.shift();
}

/* The day the portal kept (a sample per step), drawn before the live samples extend it. */
function onHistory(history) {
  for (const [boardId, b] of Object.entries(history.boards || {})) {
    const name = `${b.owner} (${boardId})`;
    history.t.forEach((t, i) => {
      if (b.role === "producer") {
        push(charts.pv, name, t, b.pv_w[i]);
        push(charts.soc, name, t, b.soc[i]);
      }
      push(charts.power, name, t, b.power_w[i]);
    });
  }
}

function onSnapshot(s) {
  timeFactor = Number(s.time_factor || 1);
  $("grid-period").textContent = s.period_s;
  $("grid-axis").textContent = timeFactor > 1 ? `Time is the emulator's (${timeFactor}× real time).` : "";
  charts.prices.data.datasets = [];
  for (const key of ["pv", "soc", "power"]) charts[key].data.datasets = [];
  if (s.history) onHistory(s.history);
  s.prices.forEach(onPrice);
  onSample(s.sample);
  document.body.dataset.gridHistory = s.history ? s.history.t.length : 0;
}

function onSample(sample) {
  samplesSeen += 1;
  document.body.dataset.samples = samplesSeen;
  const t = Number(sample.emulated_t ?? sample.t);
  $("grid-clock").textContent = clockText(t);
  const rows = [];
  for (const b of sample.boards) {
    const name = `${b.owner} (${b.board_id})`;
    if (b.role === "producer") {
      push(charts.pv, name, t, b.online ? b.pv_w : null);
      push(charts.soc, name, t, b.online && b.soc !== null ? b.soc * 100 : null);
    }
    push(charts.power, name, t, b.online ? b.power_w : null);
    rows.push(el("tr", { "data-board": b.board_id },
      el("td", { textContent: b.board_id }), el("td", { textContent: b.owner }),
      el("td", { textContent: b.online ? "yes" : "no" }),
      el("td", { textContent: b.power_w === null ? "–" : b.power_w }),
      el("td", { class: "relays", textContent: b.relays.map((r) => (r ? "on" : "off")).join(" ") || "–" })));
  }
  $("boards-now").querySelector("tbody").replaceChildren(...rows);
  for (const key of ["pv", "soc", "power"]) charts[key].update("none");
}

function onPrice(p) {
  const set = series(charts.prices, "clearing price");
  set.data.push({ x: Number(p.emulated_t ?? p.t), y: Number(formatEther(p.price_wei, 12)) });
  charts.prices.update("none");
}

let intervalTiming = { interval_s: 900, time_factor: 1 };
let intervalSeen = new Set();  // interval numbers on the chart (history and pushes overlap)

/* An interval n starts at emulated n × interval_s; at 1× that is the wall clock's time. */
function intervalTick(seconds) { return intervalTime(seconds, intervalTiming.time_factor); }

function intervalChart() {
  const chart = lineChart("chart-intervals", "ETH/kWh", { points: true });
  chart.options.scales.x.ticks.callback = intervalTick;
  chart.options.plugins.tooltip.callbacks.title = (items) => `interval ${items[0].raw.n} · ${intervalTick(items[0].parsed.x)}`;
  chart.options.plugins.tooltip.callbacks.afterLabel = (item) => `${item.raw.wh ?? 0} Wh traded`;
  return chart;
}

function onInterval(p) {
  if (p.interval_s) intervalTiming = { interval_s: Number(p.interval_s), time_factor: Number(p.time_factor || 1) };
  if (intervalSeen.has(p.n) || p.price_wei === null || p.price_wei === undefined) return;
  intervalSeen.add(p.n);
  const set = series(charts.intervals, "clearing price");
  set.data.push({ x: Number(p.emulated_start ?? p.n * intervalTiming.interval_s), y: Number(formatEther(p.price_wei, 12)),
    n: p.n, wh: p.wh ?? p.volume_wh });
  set.data.sort((a, b) => a.x - b.x);
  const keep = Math.ceil(86400 / intervalTiming.interval_s);
  while (set.data.length > keep) set.data.shift();
  charts.intervals.update("none");
}

async function loadIntervals() {
  try {
    const page = await api("GET", "/api/intervals");  // a day of intervals by default
    intervalTiming = { interval_s: Number(page.interval_s), time_factor: Number(page.time_factor || 1) };
    const factor = intervalTiming.time_factor;
    $("intervals-axis").textContent = factor > 1
      ? `A day of intervals, kept by the portal; time is the emulator's (${factor}× real time).`
      : "A day of intervals, kept by the portal.";
    page.intervals.forEach(onInterval);
    document.body.dataset.intervalsLoaded = "1";
  } catch (err) { $("intervals-axis").textContent = `The interval history did not load: ${err.message}`; }
}

function makeCharts() {
  charts.intervals = intervalChart();
  charts.pv = lineChart("chart-pv", "W");
  charts.soc = lineChart("chart-soc", "%", { y: { max: 100 } });
  charts.power = lineChart("chart-power", "W");
  charts.prices = lineChart("chart-prices", "ETH/kWh", { points: true });
}

let wiring = null;  // Promise: Chart.js loaded, charts made, the grid channel open

/* On the first showing after login: load Chart.js, make the charts, then open the channel
   (its snapshot on connect fills them), so no other view ever fetches the chart library. */
function wire(ctx) {
  const sockets = ctx.session.sockets;  // this login's channels
  return loadChart().then(() => {
    if (ctx.session.sockets !== sockets) return;  // logged out (or in again) meanwhile
    makeCharts();
    const socket = sockets.grid;
    socket.on("snapshot", onSnapshot);
    socket.on("sample", onSample);
    socket.on("price", onPrice);
    socket.on("interval", onInterval);
    loadIntervals();
    return socket.open();
  });
}

export default {
  show(ctx) {
    if (!wiring) wiring = wire(ctx).catch((err) => { wiring = null; toast(err.message, true); });
    // Charts made while their view was hidden measure themselves again once shown.
    for (const chart of Object.values(charts)) chart.resize();
  },
  stop() {
    wiring = null;
    for (const chart of Object.values(charts)) chart.destroy();
    charts = {};
    samplesSeen = 0;
    intervalSeen = new Set();
    delete document.body.dataset.samples;
    delete document.body.dataset.gridHistory;
    delete document.body.dataset.intervalsLoaded;
    $("boards-now").querySelector("tbody").replaceChildren();
  },
};
