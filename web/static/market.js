/* The market view: Sell (a signed Offer and permit), live listing cards with Buy (an EIP-712 bid
   naming the offer, signed in the page), Cancel (a permit lowering the allowance), deal cards
   with Close connection (the party's own signed closeDeal). */
import { announce } from "./announce.js";
import { api } from "./api.js";
import automatic from "./automatic.js";
import dealCards from "./deals.js";
import { handOff, isBusy, keepFocus, setBusy } from "./focus.js";
import { bidNews, extensionS, extensionText, listedNews, lotName, resultNews } from "./market_news.js";
import * as signer from "./signer.js";
import { $, el, formatEth, parseEther, priceWithCost, short, toast } from "./util.js";

const listings = new Map();   // id -> listing view
const deadlines = new Map();  // id -> local ms deadline (server seconds_left re-synced on update)
const bidders = new Set();    // listings this page has bid on (for the "outbid" notice)
const closedListings = new Set();  // ids already closed here (a late answer must not revive one)
let me = {};
let ticker = null;

/* A price per kWh with the lot's total cost beside it ("no bids" before the first). */
function priceText(wei, wh) { return wei === null ? "no bids" : priceWithCost(wei, wh); }

/* One POST: the bid built and signed here from the listing's view (no terms to ask for); the
   portal checks it as it stores it, and a refusal comes back as its sentence. */
async function bid(listingId, priceWei) {
  const listing = listings.get(listingId) || await api("GET", `/api/listings/${listingId}`);
  const signed = await signer.signBid(listing, priceWei, me.meter);
  return api("POST", `/api/listings/${listingId}/bids`, signed);
}

function bidForm(l) {
  // Named for the lot they act on: a screen reader's list of buttons tells the lots apart.
  const hint = el("p", { class: "hint bid-hint", id: `listing-${l.id}-least` });
  const input = el("input", { inputMode: "decimal", className: "bid-price",
    ariaLabel: `Your bid on ${lotName(l, me)}, in ETH per kWh`, "aria-describedby": hint.id });
  const button = el("button", { type: "submit", class: "bid-button", textContent: `Bid on ${lotName(l, me)}` });
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
      input.value = "";  // placed: the field shows the next "at least …", not the old bid
      upsertListing(updated);
      const extended = extensionS(before, updated);  // our own late bid moved the end
      toast((updated.highest_bidder === me.address ? `Bid placed on ${lotName(updated, me)}: you lead.` : "Bid signed and placed.")
        + (extended ? ` ${extensionText(extended)}` : ""));
    } catch (err) { error.textContent = explain(err, l.id); }
    finally { setBusy(button, false); }
  });
  return [form, hint, error];
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
    el("p", {}, "Start bid ", el("strong", { textContent: priceText(l.start_price_wei, l.energy_wh) })),
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
  card.querySelector(".highest").textContent = priceText(l.highest_bid_wei, l.energy_wh);
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
  if (input) {
    // Shown beside the field, not only as its placeholder (gone as soon as one types).
    const least = l.min_next_bid_wei ? `at least ${priceWithCost(l.min_next_bid_wei, l.energy_wh)}` : "";
    input.placeholder = l.min_next_bid_wei ? `at least ${formatEth(l.min_next_bid_wei)} ETH/kWh` : "ETH per kWh";
    card.querySelector(".bid-hint").textContent = least ? `Your bid: ${least}.` : "";
  }
}

/* A refused bid's reason, with the rule in the units the person typed. */
function explain(err, listingId) {
  const current = listings.get(listingId);
  if (err.kind === "BidTooLow" && current) {
    return `${err.message}; now at least ${priceWithCost(current.min_next_bid_wei, current.energy_wh)}.`;
  }
  if (err.kind === "InsufficientEscrow") return `${err.message}.`;
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
  const card = $(`listing-${l.id}`) || listingCard(l);
  fillListing(card, l, extensionS(shown, l));
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
  // Moving a node drops the focus inside it: keepFocus puts it (and the caret) back.
  if (!card.isConnected || card.nextElementSibling !== next) keepFocus(card, () => box.insertBefore(card, next));
}

const CLOSED_KEPT = 100;  // closed auctions this page lists (the snapshot sends the last 50 + one's own)

function closedText(l) {
  const own = l.seller === me.address ? " (your lot)" : l.highest_bidder === me.address && l.status === "sold" ? " (you bought it)" : "";
  if (l.status === "cancelled") return `#${l.id}: ${l.energy_wh} Wh withdrawn by the seller${own}`;
  if (l.status === "sold") {
    const who = l.highest_bidder_name || short(l.highest_bidder);
    return `#${l.id}: ${l.energy_wh} Wh from ${l.seller_name || short(l.seller)} sold to ${who} at ${priceText(l.highest_bid_wei, l.energy_wh)}${own}`;
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
  if (old) { handOff(old, $("listings-title")); old.remove(); }
  $("no-listings").hidden = listings.size > 0;
  addClosed(l);
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
    dealCards.start(me, say);
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
      s.deals.slice().reverse().forEach(dealCards.upsert);
      (s.closed || []).forEach((l) => { closedListings.add(l.id); addClosed(l); });
    });
    socket.on("listing_created", onListed);
    socket.on("bid_placed", onBid);
    socket.on("listing_closed", onClosed);
    socket.on("deal_updated", dealCards.onDeal);
  },
  stop() {
    automatic.stop();
    clearInterval(ticker);
    me = {};
    dealCards.stop();
    for (const set of [listings, deadlines, bidders, closedListings]) set.clear();
    $("listings").querySelectorAll(".listing").forEach((n) => n.remove());
    $("no-listings").hidden = false;
    $("history").replaceChildren();
  },
};
