/* The marketplace page: Sell, live listing cards with Buy, deal cards with Close connection. */
"use strict";

const listings = new Map();   // id -> listing view
const deadlines = new Map();  // id -> local ms deadline (server seconds_left re-synced on update)
const deals = new Map();

function priceText(wei) { return wei === null ? "no bids" : `${formatEther(wei, 9)} ETH/kWh`; }

function listingCard(l) {
  const me = window.gridbid.me || {};
  const mine = l.seller === me.address;
  const leading = l.highest_bidder === me.address;
  const card = el("article", { class: "card listing", id: `listing-${l.id}`, "data-id": l.id });
  card.append(
    el("h3", { textContent: `${l.energy_wh} Wh from ${l.seller_name || short(l.seller)}` }),
    el("p", {}, "Start bid ", el("strong", { textContent: priceText(l.start_price_wei) })),
    el("p", {}, "Highest bid ", el("strong", { class: "highest", textContent: priceText(l.highest_bid_wei) }),
      l.highest_bidder ? ` by ${l.highest_bidder_name || short(l.highest_bidder)}` : "",
      ` · ${l.bid_count} bid${l.bid_count === 1 ? "" : "s"}`),
    el("p", { class: "countdown" }, "Ends in ", el("span", { class: "left", textContent: "…" })),
  );
  if (leading) card.append(el("p", { class: "lead", textContent: "You lead" }));
  if (mine && l.bid_count === 0) {
    const cancel = el("button", { type: "button", class: "secondary cancel-listing", textContent: "Cancel listing" });
    cancel.addEventListener("click", async () => {
      try { removeListing(await api("POST", `/api/listings/${l.id}/cancel`)); toast("Listing cancelled"); refreshUnlisted(); }
      catch (err) { toast(err.message, true); }
    });
    card.append(cancel);
  }
  else if (me.role === "consumer" && l.bid_count && bidders.has(l.id)) card.append(el("p", { class: "outbid", textContent: "You were outbid" }));
  if (me.role === "consumer" && !mine) {
    const input = el("input", { inputMode: "decimal", className: "bid-price",
      placeholder: l.min_next_bid_wei ? `at least ${formatEther(l.min_next_bid_wei, 9)} ETH/kWh` : "ETH per kWh",
      ariaLabel: `Your bid on listing ${l.id} in ETH per kWh` });
    const form = el("form", { class: "row bid-form" }, input, el("button", { type: "submit", textContent: "Buy" }));
    const error = el("p", { class: "error bid-error", role: "alert" });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        const updated = await api("POST", `/api/listings/${l.id}/bids`, { price_wei: parseEther(input.value) });
        bidders.add(l.id);
        upsertListing(updated);
        toast("Bid placed");
      } catch (err) { error.textContent = explain(err, l.id); }
    });
    card.append(form, error);
  }
  return card;
}

/* A refused bid's reason, with the rule in the units the person typed. */
function explain(err, listingId) {
  const current = listings.get(listingId);
  if (err.kind === "BidTooLow" && current) {
    return `${err.message} — that is at least ${formatEther(current.min_next_bid_wei, 9)} ETH/kWh now.`;
  }
  if (err.kind === "InsufficientEscrow") return `${err.message} (on the Wallet page).`;
  if (err.kind === "AuctionClosed") return `${err.message}.`;
  return err.message;
}

const bidders = new Set();  // listings this browser has bid on (for the "outbid" notice)

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
  } else { $("listings").prepend(card); }
  $("no-listings").hidden = listings.size > 0;
  tick();
}

const closedListings = new Set();  // ids already closed here (a late answer must not revive one)

function removeListing(l) {
  if (closedListings.has(l.id)) return;  // told twice (an answer and a push): once is enough
  closedListings.add(l.id);
  listings.delete(l.id);
  const old = $(`listing-${l.id}`);
  if (old) old.remove();
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

function dealCard(d) {
  const me = window.gridbid.me || {};
  const card = el("article", { class: `card deal ${d.status}`, id: `deal-${d.id}`, "data-id": d.id });
  const role = d.buyer === me.address ? "buying from " + (d.seller_name || short(d.seller))
    : "selling to " + (d.buyer_name || short(d.buyer));
  card.append(
    el("h3", { textContent: `Deal #${d.id}: ${d.energy_wh} Wh, ${role}` }),
    el("p", {}, "Status ", el("strong", { class: "deal-status", textContent: d.status + (d.close_reason ? ` (${d.close_reason})` : "") })),
    el("p", {}, "Delivered ", el("strong", { class: "delivered", textContent: d.delivered_wh }), ` / ${d.energy_wh} Wh`),
    el("p", {}, "Paid ", el("strong", { class: "paid", textContent: formatEther(d.paid_wei, 9) }), ` of ${formatEther(d.cost_wei, 9)} ETH`),
  );
  if (d.refunded_wei !== null) card.append(el("p", { textContent: `Refunded to buyer: ${formatEther(d.refunded_wei, 9)} ETH` }));
  if (d.error) card.append(el("p", { class: "error", textContent: d.error }));
  if (d.status === "active") {
    const button = el("button", { type: "button", class: "danger close-connection", textContent: "Close connection" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try { upsertDeal(await api("POST", `/api/deals/${d.id}/close`)); toast("Closing the connection"); }
      catch (err) { toast(err.message, true); button.disabled = false; }
    });
    card.append(button);
  }
  return card;
}

const FINAL = new Set(["closed", "failed"]);

function upsertDeal(d) {
  const me = window.gridbid.me || {};
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

/* Cards depend on who is looking, so the live channel opens once that is known. */
function connectLive() {
  const socket = io("/market", { transports: ["websocket", "polling"] });
  socket.on("snapshot", (s) => {
    $("listings").querySelectorAll(".listing").forEach((n) => n.remove());
    listings.clear();
    s.listings.forEach(upsertListing);
    s.deals.slice().reverse().forEach(upsertDeal);
  });
  socket.on("listing_created", upsertListing);
  socket.on("bid_placed", upsertListing);
  socket.on("listing_closed", (l) => { removeListing(l); refreshUnlisted(); });
  socket.on("deal_updated", upsertDeal);
}

document.addEventListener("DOMContentLoaded", async () => {
  setInterval(tick, 250);
  // Handlers first: a click before the first data arrives must not submit the bare form.
  $("sell-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const listing = await api("POST", "/api/listings", {
        energy_wh: Number($("sell-wh").value),
        start_price_wei: parseEther($("sell-price").value),
        duration_s: Number($("sell-duration").value),
      });
      upsertListing(listing);
      toast(`Listed ${listing.energy_wh} Wh`);
      refreshUnlisted();
    } catch (err) { toast(err.message, true); }
  });
  const me = await loadMe();
  if (me.role !== "producer") $("sell-card").hidden = true;
  else refreshUnlisted();
  connectLive();
});
