/* The grid view: Chart.js charts fed by /grid samples (one per period), sold auctions and the
   interval market's clearing prices (a day of history from GET /api/intervals, then pushes). */
import { api } from "./api.js";
import { loadChart } from "./lazy.js";
import { $, el, formatEther, intervalTime, toast } from "./util.js";

/* global Chart */

const KEEP_S = 600;  // seconds of samples kept on the charts
const COLORS = ["#0b7a53", "#b3261e", "#1f5fbf", "#c07a00", "#6a3fb5", "#00838f", "#5b6676"];
let charts = {};
let samplesSeen = 0;

function hhmm(seconds) {
  const d = new Date(seconds * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function lineChart(id, yTitle, options = {}) {
  return new Chart($(id), {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      normalized: true, spanGaps: false,
      scales: {
        x: { type: "linear", ticks: { callback: hhmm, maxTicksLimit: 5 } },
        y: { title: { display: true, text: yTitle }, beginAtZero: true, ...(options.y || {}) },
      },
      plugins: { legend: { position: "bottom" },
        tooltip: { callbacks: { title: (items) => hhmm(items[0].parsed.x) } } },
      elements: { point: { radius: options.points ? 3 : 0 }, line: { borderWidth: 2 } },
    },
  });
}

/* The dataset of a chart for one series, made on first sight. */
function series(chart, label) {
  let set = chart.data.datasets.find((d) => d.label === label);
  if (!set) {
    const color = COLORS[chart.data.datasets.length % COLORS.length];
    set = { label, data: [], borderColor: color, backgroundColor: color };
    chart.data.datasets.push(set);
  }
  return set;
}

function push(chart, label, t, y) {
  const set = series(chart, label);
  set.data.push({ x: t, y });
  while (set.data.length && set.data[0].x < t - KEEP_S) set.data.shift();
}

function onSample(sample) {
  samplesSeen += 1;
  document.body.dataset.samples = samplesSeen;
  $("grid-clock").textContent = hhmm(sample.t);
  const rows = [];
  for (const b of sample.boards) {
    const name = `${b.owner} (${b.board_id})`;
    if (b.role === "producer") {
      push(charts.pv, name, sample.t, b.online ? b.pv_w : null);
      push(charts.soc, name, sample.t, b.online && b.soc !== null ? b.soc * 100 : null);
    }
    push(charts.power, name, sample.t, b.online ? b.power_w : null);
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
  set.data.push({ x: p.t, y: Number(formatEther(p.price_wei, 12)) });
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
    socket.on("snapshot", (s) => {
      $("grid-period").textContent = s.period_s;
      charts.prices.data.datasets = [];
      s.prices.forEach(onPrice);
      onSample(s.sample);
    });
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
    delete document.body.dataset.intervalsLoaded;
    $("boards-now").querySelector("tbody").replaceChildren();
  },
};
