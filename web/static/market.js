/* The market view: Sell (a signed Offer and permit), live listing cards with Buy (an EIP-712 bid
   naming the offer, signed in the page), Cancel (a permit lowering the allowance), deal cards
   with Close connection (the party's own signed closeDeal). */
import { api } from "./api.js";
import automatic from "./automatic.js";
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

/* One POST: the bid built and signed here from the listing's view (no terms to ask for); the
   portal checks it as it stores it, and a refusal comes back as its sentence. */
async function bid(listingId, priceWei) {
  const listing = listings.get(listingId) || await api("GET", `/api/listings/${listingId}`);
  const signed = await signer.signBid(listing, priceWei, me.meter);
  return api("POST", `/api/listings/${listingId}/bids`, signed);
}

function bidForm(l) {
  const input = el("input", { inputMode: "decimal", className: "bid-price",
    placeholder: l.min_next_bid_wei ? `at least ${formatEther(l.min_next_bid_wei, 9)} ETH/kWh` : "ETH per kWh",
    ariaLabel: `Your bid on listing ${l.id} in ETH per kWh` });
  const form = el("form", { class: "row bid-form", action: "javascript:void 0" }, input,
    el("button", { type: "submit", textContent: "Buy" }));
  const error = el("p", { class: "error bid-error", role: "alert" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const updated = await bid(l.id, parseEther(input.value));
      bidders.add(l.id);
      upsertListing(updated);
      toast("Bid signed and placed");
    } catch (err) { error.textContent = explain(err, l.id); }
  });
  return [form, error];
}

function listingCard(l) {
  const mine = l.seller === me.address;
  const card = el("article", { class: "card listing", id: `listing-${l.id}`, "data-id": l.id });
  card.append(
    el("h3", { textContent: `${l.energy_wh} Wh from ${l.seller_name || short(l.seller)}` }),
    el("p", {}, "Start bid ", el("strong", { textContent: priceText(l.start_price_wei) })),
    el("p", {}, "Highest bid ", el("strong", { class: "highest", textContent: priceText(l.highest_bid_wei) }),
      l.highest_bidder ? ` by ${l.highest_bidder_name || short(l.highest_bidder)}` : "",
      ` · ${l.bid_count} bid${l.bid_count === 1 ? "" : "s"}`),
    el("p", { class: "countdown" }, "Ends in ", el("span", { class: "left", textContent: "…" })),
  );
  if (l.highest_bidder === me.address) card.append(el("p", { class: "lead", textContent: "You lead" }));
  if (mine && l.bid_count === 0) {
    const cancel = el("button", { type: "button", class: "secondary cancel-listing", textContent: "Cancel listing" });
    cancel.addEventListener("click", async () => {
      try { removeListing(await cancelListing(l)); toast("Listing cancelled"); refreshUnlisted(); }
      catch (err) { toast(err.message, true); }
    });
    card.append(cancel);
  } else if (me.role === "consumer" && l.bid_count && bidders.has(l.id) && l.highest_bidder !== me.address) {
    card.append(el("p", { class: "outbid", textContent: "You were outbid" }));
  }
  if (me.role === "consumer" && !mine) card.append(...bidForm(l));
  return card;
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

function upsertListing(l) {
  if (l.status !== "open") { removeListing(l); return; }
  // An HTTP answer can arrive after a newer push over the socket: never go back in bids.
  const shown = listings.get(l.id);
  if (shown && shown.bid_count > l.bid_count) return;
  if (!shown && closedListings.has(l.id)) return;
  listings.set(l.id, l);
  deadlines.set(l.id, Date.now() + l.seconds_left * 1000);
  const card = listingCard(l);
  const old = $(`listing-${l.id}`);
  if (old) {
    const typed = old.querySelector(".bid-price");
    if (typed && typed.value) card.querySelector(".bid-price").value = typed.value;
    old.replaceWith(card);
  }
  placeListing(card, l);
  $("no-listings").hidden = listings.size > 0;
  tick();
}

/* One order wherever listings are drawn (snapshot, pushes, answers): ending soonest first, then
   the older; the server's deadline, not this page's countdown, so every tab agrees. A card
   already in its place stays put (moving it would take focus from its field). */
function listingBefore(a, b) { return a.deadline - b.deadline || a.id - b.id; }

function placeListing(card, l) {
  const box = $("listings");
  const cards = [...box.querySelectorAll(".listing")].filter((c) => c !== card);
  const next = cards.find((c) => listingBefore(l, listings.get(Number(c.dataset.id))) < 0) || null;
  // The other cards are in order already, so the card is in place right before `next`.
  if (!card.isConnected || card.nextElementSibling !== next) box.insertBefore(card, next);
}

const CLOSED_KEPT = 100;  // closed auctions this page lists (the snapshot sends the last 50 + one's own)

function closedText(l) {
  const own = l.seller === me.address ? " (your lot)" : l.highest_bidder === me.address && l.status === "sold" ? " (you bought it)" : "";
  if (l.status === "cancelled") return `#${l.id}: ${l.energy_wh} Wh withdrawn by the seller${own}`;
  if (l.status === "sold") {
    const who = l.highest_bidder_name || short(l.highest_bidder);
    return `#${l.id}: ${l.energy_wh} Wh from ${l.seller_name || short(l.seller)} sold to ${who} at ${priceText(l.highest_bid_wei)}${own}`;
  }
  return `#${l.id}: ${l.energy_wh} Wh from ${l.seller_name || short(l.seller)} unsold${own}`;
}

/* A closed auction in "Closed auctions", the latest to end first, once each. */
function addClosed(l) {
  if (!["sold", "unsold", "cancelled"].includes(l.status)) return;
  const box = $("history");
  if (box.querySelector(`li[data-id="${l.id}"]`)) return;
  const item = el("li", { "data-id": l.id, "data-deadline": l.deadline, class: `closed ${l.status}`, textContent: closedText(l) });
  const later = (li) => Number(li.dataset.deadline) < l.deadline
    || (Number(li.dataset.deadline) === l.deadline && Number(li.dataset.id) < l.id);
  box.insertBefore(item, [...box.children].find(later) || null);
  while (box.children.length > CLOSED_KEPT) box.lastElementChild.remove();
}

function removeListing(l) {
  if (closedListings.has(l.id)) return;  // told twice (an answer and a push): once is enough
  closedListings.add(l.id);
  listings.delete(l.id);
  const old = $(`listing-${l.id}`);
  if (old) old.remove();
  $("no-listings").hidden = listings.size > 0;
  addClosed(l);
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
  upsertDeal(view);
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

function dealCard(d) {
  const card = el("article", { class: `card deal ${d.status}`, id: `deal-${d.id}`, "data-id": d.id });
  const role = d.buyer === me.address ? "buying from " + (d.seller_name || short(d.seller))
    : "selling to " + (d.buyer_name || short(d.buyer));
  card.append(
    el("h3", { textContent: `Deal #${d.id}: ${d.energy_wh} Wh, ${role}` }),
    el("p", {}, "Status ", el("strong", { class: "deal-status", textContent: d.status + (d.close_reason ? ` (${d.close_reason})` : "") })),
    el("p", {}, "Delivered ", el("strong", { class: "delivered", textContent: d.delivered_wh }), ` / ${d.energy_wh} Wh`),
    el("p", {}, "Paid ", el("strong", { class: "paid", textContent: formatEther(d.paid_wei, 9) }), ` of ${formatEther(d.cost_wei, 9)} ETH`),
  );
  if (d.refunded_wei !== null && d.refunded_wei !== undefined) card.append(el("p", { textContent: `Refunded to buyer: ${formatEther(d.refunded_wei, 9)} ETH` }));
  if (d.final_report) {
    card.append(el("p", { class: "hint" }, `Final delivery report (${d.final_report.status}) `,
      el("code", { class: "hash", textContent: d.final_report.tx_hash })));
  }
  if (d.error) card.append(el("p", { class: "error", textContent: d.error }));
  if (d.status === "active" || d.status === "paused") {  // a paused deal can be ended too
    const button = el("button", { type: "button", class: "danger close-connection", textContent: "Close connection" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try { toast("Closing the connection"); upsertDeal(await closeConnection(d)); }
      catch (err) { toast(err.message, true); button.disabled = false; }
    });
    card.append(button);
  }
  return card;
}

function upsertDeal(d) {
  if (d.buyer !== me.address && d.seller !== me.address) return;
  // The answer to Close connection ("closing") can arrive after the push of "closed".
  const shown = deals.get(d.id);
  if (shown && FINAL.has(shown.status) && !FINAL.has(d.status)) return;
  deals.set(d.id, d);
  const card = dealCard(d);
  const old = $(`deal-${d.id}`);
  if (old) old.replaceWith(card);
  else { const box = $("deals"); if (deals.size === 1) box.replaceChildren(); box.prepend(card); }
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
      $("sell-button").disabled = true;
      try { await sell(); } catch (err) { toast(err.message, true); } finally { $("sell-button").disabled = false; }
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
      $("listings").querySelectorAll(".listing").forEach((n) => n.remove());
      listings.clear();
      s.listings.forEach(upsertListing);
      s.deals.slice().reverse().forEach(upsertDeal);
      (s.closed || []).forEach((l) => { closedListings.add(l.id); addClosed(l); });
    });
    socket.on("listing_created", upsertListing);
    socket.on("bid_placed", upsertListing);
    socket.on("listing_closed", (l) => { removeListing(l); refreshUnlisted(); });
    socket.on("deal_updated", upsertDeal);
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
