/* The market view's deal cards: delivery and payment as pushed, and Close connection (the
   final delivery report first, then the party's own signed closeDeal). A card is made once and
   filled in place, so Close connection keeps the focus through every push and while it works;
   each start, milestone, pause and end is said once (market_news.js). */
import { api } from "./api.js";
import { handOff, isBusy, setBusy } from "./focus.js";
import { dealNews } from "./market_news.js";
import * as signer from "./signer.js";
import { $, el, formatEth, short, toast } from "./util.js";

const deals = new Map();  // id -> deal view shown
const FINAL = new Set(["closed", "failed"]);
let me = {};
let say = () => {};

/* Wait until the portal's record of a transaction says it was mined. */
async function mined(hash, what, timeoutMs = 120_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const record = await api("GET", `/api/tx/${hash}`);
    if (record.status === "mined") return record;
    if (record.status === "failed") throw new Error(`the ${what} failed: ${record.error || "no reason given"}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the ${what} was not mined in time: try again`);
}

/* Close connection: the final delivery report goes first, then our own closeDeal. */
async function closeConnection(d) {
  if (signer.current() === "keystore") {
    const params = { deal_id: d.id };
    const prepared = await api("POST", "/api/tx/prepare", { action: "close", ...params });
    const { raw } = await signer.signPrepared("close", params, prepared, { chain_deal_id: d.chain_deal_id });
    const view = await api("POST", `/api/deals/${d.id}/close`, { raw });
    return view;
  }
  // A browser wallet sends itself: the close may go only once the final report is mined,
  // and that report waits (a few seconds) for both meters' readings signed after the switch.
  let view = await api("POST", `/api/deals/${d.id}/close`, {});
  onDeal(view);
  while (view.final_report && view.final_report.status === "waiting") {
    await new Promise((r) => setTimeout(r, 500));
    view = await api("GET", `/api/deals/${d.id}`);
  }
  if (view.final_report && view.final_report.tx_hash) {
    await mined(view.final_report.tx_hash, "final delivery report");
  }
  await signer.transact("close", { deal_id: d.id }, { chain_deal_id: d.chain_deal_id });
  return api("GET", `/api/deals/${d.id}`);
}

/* A deal card's parts, made once and filled in place (fillDeal): Close connection keeps the
   focus through every delivery push, and while it works. */
function dealCard(d) {
  const card = el("article", { class: "card deal", id: `deal-${d.id}`, "data-id": d.id, "aria-labelledby": `deal-${d.id}-title` });
  const role = d.buyer === me.address ? "buying from " + (d.seller_name || short(d.seller))
    : "selling to " + (d.buyer_name || short(d.buyer));
  card.append(
    el("h3", { id: `deal-${d.id}-title`, class: "deal-title", tabIndex: -1, textContent: `Deal #${d.id}: ${d.energy_wh} Wh, ${role}` }),
    el("p", {}, "Status ", el("strong", { class: "deal-status" })),
    el("p", {}, "Delivered ", el("strong", { class: "delivered" }), ` / ${d.energy_wh} Wh`),
    el("p", {}, "Paid ", el("strong", { class: "paid" }), ` of ${formatEth(d.cost_wei)} ETH`),
    el("p", { class: "refunded", hidden: true }),
    el("p", { class: "hint final-report", hidden: true }, "", el("code", { class: "hash" })),
    el("p", { class: "error deal-error", hidden: true }),
  );
  const button = el("button", { type: "button", class: "danger close-connection", textContent: "Close connection", hidden: true });
  button.addEventListener("click", async () => {
    if (isBusy(button)) return;
    button.dataset.pressed = "1";  // busy until answered, whatever pushes come meanwhile
    setBusy(button, true, "Closing the connection…");  // not disabled: that would drop the focus
    try { toast("Closing the connection"); onDeal(await closeConnection(deals.get(d.id) || d)); }
    catch (err) { toast(err.message, true); }
    finally { delete button.dataset.pressed; setBusy(button, false); fillDeal(card, deals.get(d.id) || d); }
  });
  card.append(button);
  return card;
}

function fillDeal(card, d) {
  card.className = `card deal ${d.status}`;
  card.querySelector(".deal-status").textContent = d.status + (d.close_reason ? ` (${d.close_reason})` : "");
  card.querySelector(".delivered").textContent = d.delivered_wh;
  card.querySelector(".paid").textContent = formatEth(d.paid_wei);
  const refunded = card.querySelector(".refunded");
  refunded.hidden = d.refunded_wei === null || d.refunded_wei === undefined;
  refunded.textContent = refunded.hidden ? "" : `Refunded to buyer: ${formatEth(d.refunded_wei)} ETH`;
  const report = card.querySelector(".final-report");
  report.hidden = !d.final_report;
  if (d.final_report) {
    report.firstChild.textContent = `Final delivery report (${d.final_report.status}) `;
    report.querySelector(".hash").textContent = d.final_report.tx_hash || "";
  }
  const error = card.querySelector(".deal-error");
  error.hidden = !d.error;
  error.textContent = d.error || "";
  const button = card.querySelector(".close-connection");
  const closable = d.status === "active" || d.status === "paused";  // a paused deal can be ended too
  if (!closable && d.status !== "closing") {  // opening, or over: nothing to press
    handOff(button, card.querySelector(".deal-title"));
    button.hidden = true;
    return;
  }
  button.hidden = false;
  setBusy(button, d.status === "closing" || button.dataset.pressed === "1", "Closing the connection…");
}

/* Show a deal's latest view; the view it replaced (undefined if new), or null when not ours or stale. */
function upsertDeal(d) {
  if (d.buyer !== me.address && d.seller !== me.address) return null;
  // The answer to Close connection ("closing") can arrive after the push of "closed".
  const shown = deals.get(d.id);
  if (shown && FINAL.has(shown.status) && !FINAL.has(d.status)) return null;
  deals.set(d.id, d);
  let card = $(`deal-${d.id}`);
  if (!card) {
    card = dealCard(d);
    const box = $("deals");
    if (deals.size === 1) box.replaceChildren();
    box.prepend(card);
  }
  fillDeal(card, d);
  return shown;
}

function onDeal(d) {
  const known = deals.has(d.id);
  const before = deals.get(d.id);
  if (upsertDeal(d) === null) return;
  say(dealNews(known ? before : null, d, me));
}

export default {
  start(who, announcer) { me = who; say = announcer; },
  upsert: upsertDeal,
  onDeal,
  stop() {
    me = {};
    deals.clear();
    $("deals").replaceChildren(el("p", { class: "hint", textContent: "No deals yet." }));
  },
};
