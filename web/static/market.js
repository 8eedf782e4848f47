/* The market view: Sell (a signed Offer and permit), live listing cards with Buy (an EIP-712 bid
   naming the offer, signed in the page), Cancel (a permit lowering the allowance), deal cards
   with Close connection (the party's own signed closeDeal). */
import { announce } from "./announce.js";
import { api } from "./api.js";
import automatic from "./automatic.js";
import { handOff, isBusy, setBusy } from "./focus.js";
import { bidNews, dealNews, extensionS, extensionText, listedNews, lotName, resultNews } from "./market_news.js";
import * as signer from "./signer.js";
import { $, el, formatEther, parseEther, short, toast } from "./util.js";

const listings = new Map();   // id -> listing view
const deadlines = new Map();  // id -> local ms deadline (server seconds_left re-synced on update)
const deals = new Map();
const bidders = new Set();    // listings this page has bid on (for the "outbid" notice)
const closedListings = new Set();  // ids already closed here (a late answer must not revive one)
const FINAL = new Set(["closed", "failed"]);
let me = {};
let ticker = null;

function priceText(wei) { return wei === null ? "no bids" : `${formatEther(wei, 9)} ETH/kWh`; }

/* Terms from the portal, checked and signed here; the portal stores our own signature. */
async function bid(listingId, priceWei) {
  const listing = listings.get(listingId) || await api("GET", `/api/listings/${listingId}`);
  const terms = await api("POST", `/api/listings/${listingId}/bids/terms`, { price_wei: priceWei });
  const signature = await signer.signBid(terms, listing, priceWei, me.meter);
  return api("POST", `/api/listings/${listingId}/bids`, { bid: terms.message, signature });
}

function bidForm(l) {
  const input = el("input", { inputMode: "decimal", className: "bid-price",
    ariaLabel: `Your bid on listing ${l.id} in ETH per kWh` });
  const button = el("button", { type: "submit", textContent: "Buy" });
  const form = el("form", { class: "row bid-form", action: "javascript:void 0" }, input, button);
  const error = el("p", { class: "error bid-error", role: "alert" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (isBusy(button)) return;
    error.textContent = "";
    setBusy(button, true);  // not disabled: that would drop the focus
    try {
      const updated = await bid(l.id, parseEther(input.value));
      const before = listings.get(l.id);
      bidders.add(l.id);
      upsertListing(updated);
      const extended = extensionS(before, updated);  // our own late bid moved the end
      toast((updated.highest_bidder === me.address ? `Bid placed on ${lotName(updated, me)}: you lead.` : "Bid signed and placed.")
        + (extended ? ` ${extensionText(extended)}` : ""));
    } catch (err) { error.textContent = explain(err, l.id); }
    finally { setBusy(button, false); }
  });
  return [form, error];
}

/* A listing card's parts, made once: later views fill them in place (fillListing), so focus,
   the caret and anything typed in the card survive every push. */
function listingCard(l) {
  const mine = l.seller === me.address;
  const card = el("article", { class: "card listing", id: `listing-${l.id}`, "data-id": l.id,
    "aria-labelledby": `listing-${l.id}-title` });
  card.append(
    el("h3", { id: `listing-${l.id}-title`, class: "listing-title", tabIndex: -1,
      textContent: `${l.energy_wh} Wh from ${l.seller_name || short(l.seller)}` }),
    el("p", {}, "Start bid ", el("strong", { textContent: priceText(l.start_price_wei) })),
    el("p", {}, "Highest bid ", el("strong", { class: "highest" }), el("span", { class: "by" })),
    el("p", { class: "countdown" }, "Ends in ", el("span", { class: "left", textContent: "…" })),
    el("p", { class: "extended hint", hidden: true }),
    el("p", { class: "standing", hidden: true }),
  );
  if (mine) {
    const cancel = el("button", { type: "button", class: "secondary cancel-listing", textContent: "Cancel listing" });
    cancel.addEventListener("click", async () => {
      try { removeListing(await cancelListing(l)); toast("Listing cancelled"); refreshUnlisted(); }
      catch (err) { toast(err.message, true); }
    });
    card.append(cancel);
  }
  if (me.role === "consumer" && !mine) card.append(...bidForm(l));
  return card;
}

/* One standing at a time, from the listing's current leader: leading, outbid, or none. */
function standing(l) {
  if (l.highest_bidder === me.address) return { cls: "lead", text: "You lead" };
  if (me.role === "consumer" && l.bid_count && bidders.has(l.id)) {
    return { cls: "outbid", text: `You were outbid: ${l.highest_bidder_name || short(l.highest_bidder)} leads` };
  }
  return null;
}

function fillListing(card, l, extendedS) {
  card.querySelector(".highest").textContent = priceText(l.highest_bid_wei);
  card.querySelector(".by").textContent = (l.highest_bidder ? ` by ${l.highest_bidder_name || short(l.highest_bidder)}` : "")
    + ` · ${l.bid_count} bid${l.bid_count === 1 ? "" : "s"}`;
  const now = standing(l);
  const state = card.querySelector(".standing");
  state.className = `standing${now ? ` ${now.cls}` : ""}`;
  state.textContent = now ? now.text : "";
  state.hidden = !now;
  if (extendedS) Object.assign(card.querySelector(".extended"), { hidden: false, textContent: extensionText(extendedS) });
  const cancel = card.querySelector(".cancel-listing");
  if (cancel && l.bid_count > 0 && !cancel.hidden) {  // a bid came: the seller may no longer cancel
    handOff(cancel, card.querySelector(".listing-title"));
    cancel.hidden = true;
  }
  const input = card.querySelector(".bid-price");
  if (input) input.placeholder = l.min_next_bid_wei ? `at least ${formatEther(l.min_next_bid_wei, 9)} ETH/kWh` : "ETH per kWh";
}

/* A refused bid's reason, with the rule in the units the person typed. */
function explain(err, listingId) {
  const current = listings.get(listingId);
  if (err.kind === "BidTooLow" && current) {
    return `${err.message} — that is at least ${formatEther(current.min_next_bid_wei, 9)} ETH/kWh now.`;
  }
  if (err.kind === "InsufficientEscrow") return `${err.message} (on the Wallet view).`;
  if (err.kind === "AuctionClosed") return `${err.message}.`;
  return err.message;
}

/* Show a listing's latest view (an answer or a push), unless an older one than shown. */
function upsertListing(l) {
  if (l.status !== "open") { removeListing(l); return; }
  // An HTTP answer can arrive after a newer push over the socket: never go back in bids.
  const shown = listings.get(l.id);
  if (shown && shown.bid_count > l.bid_count) return;
  if (!shown && closedListings.has(l.id)) return;
  listings.set(l.id, l);
  deadlines.set(l.id, Date.now() + l.seconds_left * 1000);
  let card = $(`listing-${l.id}`);
  if (!card) { card = listingCard(l); $("listings").prepend(card); }
  fillListing(card, l, extensionS(shown, l));
  $("no-listings").hidden = listings.size > 0;
  tick();
}

function removeListing(l) {
  if (closedListings.has(l.id)) return;  // told twice (an answer and a push): once is enough
  closedListings.add(l.id);
  listings.delete(l.id);
  const old = $(`listing-${l.id}`);
  if (old) { handOff(old, $("listings-title")); old.remove(); }
  $("no-listings").hidden = listings.size > 0;
  if (l.status === "cancelled") {
    $("history").prepend(el("li", { textContent: `#${l.id}: ${l.energy_wh} Wh withdrawn by the seller` }));
  } else if (l.status === "sold" || l.status === "unsold") {
    const who = l.highest_bidder_name || short(l.highest_bidder);
    const text = l.status === "sold" ? `#${l.id}: ${l.energy_wh} Wh sold to ${who} at ${priceText(l.highest_bid_wei)}`
      : `#${l.id}: ${l.energy_wh} Wh unsold`;
    $("history").prepend(el("li", { textContent: text }));
  }
}

/* Pushes say what changed (market_news.js) once, without moving focus. */
function say(news, show = false) {
  if (news) announce(news.text, { urgent: news.urgent, show: show || news.show || news.urgent });
}

function onListed(l) {
  const known = listings.has(l.id) || closedListings.has(l.id);
  upsertListing(l);
  if (!known) say(listedNews(l, me));
}

function onBid(l) {
  const before = listings.get(l.id);
  if (!before || l.bid_count <= before.bid_count) { upsertListing(l); return; }
  upsertListing(l);
  say(bidNews(before, l, me, bidders.has(l.id)));
}

function onClosed(l) {
  const seen = closedListings.has(l.id);
  removeListing(l);
  refreshUnlisted();
  const involved = l.seller === me.address || l.highest_bidder === me.address || bidders.has(l.id);
  if (!seen) say(resultNews(l, me, bidders.has(l.id)), involved);
}

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
    el("p", {}, "Paid ", el("strong", { class: "paid" }), ` of ${formatEther(d.cost_wei, 9)} ETH`),
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
  card.querySelector(".paid").textContent = formatEther(d.paid_wei, 9);
  const refunded = card.querySelector(".refunded");
  refunded.hidden = d.refunded_wei === null || d.refunded_wei === undefined;
  refunded.textContent = refunded.hidden ? "" : `Refunded to buyer: ${formatEther(d.refunded_wei, 9)} ETH`;
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

function tick() {
  for (const [id, deadline] of deadlines) {
    const card = $(`listing-${id}`);
    if (!card) { deadlines.delete(id); continue; }
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    card.querySelector(".left").textContent = left > 0 ? `${left} s` : "closing…";
  }
}

async function refreshUnlisted() {
  try { $("sell-unlisted").textContent = (await api("GET", "/api/wallet")).unlisted_wh; } catch (e) { /* shown on next try */ }
}

/* Cancel: the escrow's allowance goes down by the lot, by a permit signed here. */
async function cancelListing(l) {
  const prepared = await api("POST", "/api/tx/prepare", { action: "cancel_listing", listing_id: l.id });
  const body = prepared.needed ? { permit: await signer.signPermit(prepared.permit, prepared.value) } : {};
  return api("POST", `/api/listings/${l.id}/cancel`, body);
}

/* Sell: a listing is our signed Offer (energy, floor, meter, deadline); the escrow may take the
   tokens only with our permit, signed here when the allowance is short (no Ether needed). */
async function sell() {
  const energy = Number($("sell-wh").value);
  const order = { energy_wh: energy, start_price_wei: parseEther($("sell-price").value),
    duration_s: Number($("sell-duration").value) };
  const terms = await api("POST", "/api/listings/terms", order);
  const body = { offer: terms.message, signature: await signer.signOffer(terms, order, me.meter),
    energy_wh: energy, start_price_wei: order.start_price_wei };
  const prepared = await api("POST", "/api/tx/prepare", { action: "approve", energy_wh: energy });
  if (prepared.needed) body.permit = await signer.signPermit(prepared.permit, prepared.value);
  const listing = await api("POST", "/api/listings", body);
  upsertListing(listing);
  toast(`Listed ${listing.energy_wh} Wh`);
  refreshUnlisted();
}

export default {
  init() {
    automatic.init();
    // Handlers first: a click before the first data arrives must not submit the bare form.
    $("sell-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $("sell-button");
      if (isBusy(button)) return;
      setBusy(button, true, "Signing and listing…");  // not disabled: that would drop the focus
      try { await sell(); } catch (err) { toast(err.message, true); } finally { setBusy(button, false); }
    });
  },
  start(ctx) {
    me = ctx.session.me;
    automatic.start(ctx);
    $("sell-card").hidden = me.role !== "producer";
    if (me.role === "producer") refreshUnlisted();
    ticker = setInterval(tick, 250);
    const socket = ctx.session.sockets.market;
    socket.on("snapshot", (s) => {
      // The state as it stands (login, a reconnect): drawn in place and said by nobody.
      const open = new Set(s.listings.map((l) => l.id));
      for (const [id] of listings) {
        if (open.has(id)) continue;
        listings.delete(id);
        const gone = $(`listing-${id}`);
        if (gone) { handOff(gone, $("listings-title")); gone.remove(); }
      }
      s.listings.forEach(upsertListing);
      s.deals.slice().reverse().forEach(upsertDeal);
    });
    socket.on("listing_created", onListed);
    socket.on("bid_placed", onBid);
    socket.on("listing_closed", onClosed);
    socket.on("deal_updated", onDeal);
  },
  stop() {
    automatic.stop();
    clearInterval(ticker);
    me = {};
    for (const set of [listings, deadlines, deals, bidders, closedListings]) set.clear();
    $("listings").querySelectorAll(".listing").forEach((n) => n.remove());
    $("no-listings").hidden = false;
    $("deals").replaceChildren(el("p", { class: "hint", textContent: "No deals yet." }));
    $("history").replaceChildren();
  },
};
