/* The market view's Automatic trading card: one's standing order in the interval market (its
   EIP-712 typed data from the portal, checked and signed in this page), the market mode, the
   next clearing's countdown, and one's fills per interval, pushed live. */
import { announce } from "./announce.js";
import { api } from "./api.js";
import { handOff, isBusy, setBusy } from "./focus.js";
import * as signer from "./signer.js";
import { $, duration, el, formatEther, intervalTime, parseEther, toast } from "./util.js";

let me = {};
let side = null;         // "sell" (producer) | "buy" (consumer) | null (no order possible)
let nextAt = null;       // local ms of the next clearing (re-synced by every answer and push)
let ticker = null;
let current = null;      // the standing order as the portal holds it, or null
let timing = { interval_s: 900, time_factor: 1 };  // of the interval market (GET answers)
let mode = null;         // the market mode last shown (a change the boundary made is said)
let seenFills = null;    // keys of the fills shown (null until the first answer: nothing to say)

function priceText(wei) {
  return wei === null || wei === undefined ? "no trade" : `${formatEther(wei, 9)} ETH/kWh`;
}

/* The next clearing's timing from an answer or a push: seconds left by the market's clock. */
function syncTiming(t) {
  if (t.seconds_left === undefined || t.seconds_left === null) return;
  nextAt = Date.now() + Number(t.seconds_left) * 1000;
  if (t.interval_s) {
    timing = { interval_s: Number(t.interval_s), time_factor: Number(t.time_factor || 1) };
    const factor = Number(t.time_factor || 1);
    const real = factor > 1 ? `, ${duration(t.interval_s / factor)} real at ${factor}×` : "";
    $("interval-length").textContent = `(intervals of ${duration(t.interval_s)}${real})`;
  }
  tick();
}

function tick() {
  if (nextAt === null) return;
  const left = (nextAt - Date.now()) / 1000;
  $("next-clearing").textContent = left > 0.5 ? duration(Math.ceil(left)) : "clearing…";
}

/* What the person typed, as the portal's order fields and as the page will check them. */
function asked() {
  const priceWei = parseEther($("order-price").value);
  const max = $("order-max").value.trim();
  const fields = { kind: side, max_wh_per_interval: max ? Number(max) : 0,
    valid_s: Math.round(Number($("order-hours").value) * 3600) };
  if (side === "sell") {
    fields.floor_wei_per_kwh = priceWei;
    const reserve = $("order-reserve").value.trim();
    if ($("order-reserve-unit").value === "wh") fields.reserve_wh = Number(reserve);
    else fields.reserve_soc = Number(reserve) / 100;
  } else {
    fields.cap_wei_per_kwh = priceWei;
    fields.expected_wh = Number($("order-expected").value);
    const budget = $("order-budget").value.trim();
    fields.daily_budget_wei = budget ? parseEther(budget) : "0";
  }
  return fields;
}

/* Terms from the portal, checked against what was typed, signed here; stored with our signature. */
async function setOrder() {
  const fields = asked();
  const terms = await api("POST", "/api/orders/terms", fields);
  const check = { ...fields, price_wei: side === "sell" ? fields.floor_wei_per_kwh : fields.cap_wei_per_kwh };
  const signature = await signer.signStandingOrder(terms, side, check, me.meter);
  return api("POST", "/api/orders", { kind: side, order: terms.message, signature });
}

function orderText(o) {
  const m = o.order || {};
  const sell = o.kind === "sell";
  const price = sell ? m.floorWeiPerKWh : m.capWeiPerKWh;
  const parts = [`${sell ? "Selling at no less than" : "Buying at no more than"} ${priceText(price)}`];
  if (sell && m.reserveWh !== undefined) parts.push(`keeping ${m.reserveWh} Wh in the battery`);
  if (!sell && m.expectedWh !== undefined) parts.push(`expecting ${m.expectedWh} Wh per interval`);
  if (m.maxWhPerInterval && BigInt(m.maxWhPerInterval) > 0n) parts.push(`at most ${m.maxWhPerInterval} Wh per interval`);
  if (!sell && m.dailyBudgetWei && BigInt(m.dailyBudgetWei) > 0n) parts.push(`at most ${formatEther(m.dailyBudgetWei, 9)} ETH a day`);
  if (m.expiry) parts.push(`until ${new Date(Number(m.expiry) * 1000).toLocaleString()}`);
  return `${parts.join(", ")} (${o.status || "active"}).`;
}

function renderOrder(o) {
  current = o && o.status !== "cancelled" && o.status !== "expired" ? o : null;
  const box = $("order-current");
  box.hidden = !current;
  if (!current) handOff($("order-cancel"), $("order-submit"));  // the cancel button goes away
  box.textContent = current ? `Your standing order: ${orderText(current)}` : "";
  $("order-cancel").hidden = !current;
  $("order-submit").textContent = current ? "Sign and change order" : "Sign and set order";
}

/* The account's market ({mode, since_interval, requested}): radios, and what it means now. */
function renderMode(m) {
  const was = mode;
  mode = (m && m.mode) || "lots";
  if (was !== null && was !== mode) {
    announce(mode === "intervals" ? "You now trade in the interval market: your standing order clears every interval."
      : "You now trade in the lot auctions again.", { show: true });
  }
  const requested = m && m.requested ? m.requested : null;
  const shown = requested || mode;
  for (const id of ["mode-lots", "mode-intervals"]) $(id).checked = $(id).value === shown;
  const now = mode === "intervals"
    ? "You trade in the interval market: your standing order is cleared every interval."
    : "You trade in the lot auctions: a standing order needs the interval market.";
  const next = requested ? ` Switching to ${requested === "intervals" ? "the interval market" : "the lot auctions"}`
    + " at the next interval boundary with nothing open." : "";
  $("mode-state").textContent = now + next;
}

function settledText(f) {
  if (f.settled === true || (f.settled_batch !== null && f.settled_batch !== undefined)) return "settled";
  return f.metered_wh === null || f.metered_wh === undefined ? "interval running" : "not yet";
}

/* An interval as its start time reads (emulated when the emulator runs fast), its number kept. */
function intervalStart(n) {
  return timing.time_factor > 1 ? n * timing.interval_s : n * timing.interval_s / timing.time_factor;
}

function intervalCell(n) {
  return el("td", { title: `interval ${n}`, textContent: intervalTime(intervalStart(n), timing.time_factor) });
}

function paidText(f, sold) {
  if (f.paid_wei === null || f.paid_wei === undefined) return "–";
  return BigInt(f.paid_wei) === 0n ? "0" : `${sold ? "+" : "−"}${formatEther(f.paid_wei, 9)}`;
}

function fillRow(f) {
  const sold = f.side === "sell";
  return el("tr", { "data-n": f.n, "data-side": f.side, class: "fill" },
    intervalCell(f.n), el("td", { textContent: sold ? "sold" : "bought" }),
    el("td", { class: "wh", textContent: f.wh }), el("td", { textContent: formatEther(f.price_wei, 9) }),
    el("td", { class: "metered", textContent: f.metered_wh ?? "–" }),
    el("td", { class: "paid", textContent: paidText(f, sold) }),
    el("td", { class: "settled", textContent: settledText(f) }));
}

function fillKey(f) { return `${f.n}:${f.side}`; }

/* One's own new fills, said once each (not the first answer's: those are not news). */
function fillNews(fills) {
  const keys = new Set(fills.map(fillKey));
  if (seenFills !== null) {
    for (const f of fills) {
      if (seenFills.has(fillKey(f))) continue;
      announce(`Your standing order ${f.side === "sell" ? "sold" : "bought"} ${f.wh} Wh in the interval ${intervalLabel(f.n)}`
        + ` at ${priceText(f.price_wei)}.`);
    }
  }
  seenFills = keys;
}

function renderFills(data) {
  const fills = data.fills || [];
  fillNews(fills);
  $("fills").querySelector("tbody").replaceChildren(...fills.map(fillRow));
  $("no-fills").hidden = fills.length > 0;
}

function intervalLabel(n) { return `of ${intervalTime(intervalStart(n), timing.time_factor)}`; }

/* A clearing, pushed to every market page: said in the live region, the countdown re-synced. */
function onInterval(news) {
  syncTiming(news);
  refreshOrder();  // a boundary may have switched the market or expired the order
  const wh = news.wh ?? news.volume_wh;
  const text = news.price_wei === null || news.price_wei === undefined
    ? `Interval ${intervalLabel(news.n)} cleared: no trade.`
    : `Interval ${intervalLabel(news.n)} cleared at ${priceText(news.price_wei)}${wh !== undefined ? `, ${wh} Wh traded` : ""}.`;
  $("clearing-result").textContent = text;  // shown on the card; said once by the announcer
  announce(text);
}

async function switchMode(mode) {
  try { renderMode(await api("POST", "/api/market-mode", { mode })); toast(`Market mode: ${mode}`); }
  catch (err) { toast(err.message, true); refresh(); }
}

async function refreshOrder() {
  try {
    const mine = await api("GET", "/api/orders/mine");
    renderOrder(mine.order);
    renderMode(mine.mode);
    syncTiming(mine);
  } catch (err) { toast(err.message, true); }
}

async function refresh() {
  await refreshOrder();
  try { renderFills(await api("GET", "/api/intervals/mine")); } catch (err) { toast(err.message, true); }
}

function showSide() {
  const card = $("auto-card");
  card.classList.toggle("sell", side === "sell");
  card.classList.toggle("buy", side === "buy");
  // Fields of the other side are disabled: hidden, they must not block the form's checks.
  for (const input of card.querySelectorAll(".sell-only input, .sell-only select")) input.disabled = side !== "sell";
  for (const input of card.querySelectorAll(".buy-only input")) input.disabled = side !== "buy";
  $("order-price-label").textContent = side === "sell" ? "Lowest price you sell at (ETH per kWh)" : "Highest price you pay (ETH per kWh)";
  $("order-side").textContent = side === "sell"
    ? "Sell order: each interval, the lesser of your unsold tokens and your battery energy above the reserve is offered."
    : "Buy order: each interval, your expected draw (your last interval's metered draw once served) is bid for.";
}

export default {
  init() {
    $("order-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $("order-submit");
      if (isBusy(button)) return;
      $("order-error").textContent = "";
      setBusy(button, true, "Signing…");  // not disabled: that would drop the focus
      try { const set = await setOrder(); setBusy(button, false); renderOrder(set); toast("Standing order signed and set"); }
      catch (err) { $("order-error").textContent = err.message; }
      finally { setBusy(button, false); }
    });
    $("order-cancel").addEventListener("click", async () => {
      let view;
      try { view = await api("DELETE", "/api/orders"); renderOrder(null); toast("Standing order cancelled"); }
      catch (err) { toast(err.message, true); return; }
      // The portal stops using it at once; our own cancelOrder ends it on chain as well.
      try {
        const record = await signer.sendPrepared("cancel_order", view.cancel_tx, { kind: view.kind, order: view.order });
        if (record) toast(`Standing order cancelled, on chain too: ${record.tx_hash}`);
        // None offered while its fills wait: a cancel on chain would void their settlement.
        else toast("Standing order cancelled: it trades no more; what it traded still settles on chain");
      } catch (err) { toast(`Cancelled here; the on-chain cancel was not sent: ${err.message}`, true); }
    });
    for (const id of ["mode-lots", "mode-intervals"]) {
      $(id).addEventListener("change", (event) => { if (event.target.checked) switchMode(event.target.value); });
    }
  },
  start(ctx) {
    me = ctx.session.me;
    side = me.role === "producer" ? "sell" : me.role === "consumer" ? "buy" : null;
    $("auto-card").hidden = side === null;
    if (side === null) return;
    showSide();
    ticker = setInterval(tick, 250);
    const socket = ctx.session.sockets.market;
    socket.on("interval", onInterval);
    socket.on("fills", renderFills);
    refresh();
  },
  stop() {
    clearInterval(ticker);
    me = {};
    side = null;
    nextAt = null;
    mode = null;
    seenFills = null;
    renderOrder(null);
    $("fills").querySelector("tbody").replaceChildren();
    $("no-fills").hidden = false;
    for (const id of ["next-clearing", "clearing-result", "mode-state", "interval-length", "order-error"]) $(id).textContent = "";
  },
};
