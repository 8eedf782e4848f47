/* What a change in the lot market means to this person, in words: pure functions of the view
   shown before, the view pushed now and who is looking, returning what to say ({text, urgent})
   or null. market.js says it (announce.js) and shows the same words on the cards. */
import { formatEth, short } from "./util.js";

// Delivery milestones a deal announces (per cent of its energy), besides its start and end.
export const MILESTONES = [25, 50, 75];
const EXTENDED_MIN_S = 0.5;  // a deadline moved by less is a re-sync, not a soft-close extension

function name(known, address) { return known || short(address); }
function price(wei) { return `${formatEth(wei)} ETH/kWh`; }

/* "your 60 Wh" to its seller, "alice's 60 Wh" to everyone else. */
export function lotName(l, me) {
  return l.seller === me.address ? `your ${l.energy_wh} Wh` : `${name(l.seller_name, l.seller)}'s ${l.energy_wh} Wh`;
}

/* A listing someone else just offered. */
export function listedNews(l, me) {
  if (l.seller === me.address) return null;  // one's own: the Sell button's message says it
  return { text: `New listing: ${l.energy_wh} Wh from ${name(l.seller_name, l.seller)}, start bid ${price(l.start_price_wei)},`
    + ` bidding ends in ${Math.round(l.seconds_left)} s.`, urgent: false };
}

/* Seconds a soft close added to the deadline (0 if none). */
export function extensionS(before, after) {
  if (!before || after.deadline === undefined || before.deadline === undefined) return 0;
  const moved = Number(after.deadline) - Number(before.deadline);
  return moved >= EXTENDED_MIN_S ? Math.round(moved) : 0;
}

export function extensionText(seconds) { return `Bidding extended by ${seconds} s: a late bid.`; }

/* A new highest bid: being outbid needs action (assertive); the seller and earlier bidders hear
   of it politely; a soft-close extension is said to everyone who sees the card. */
export function bidNews(before, after, me, haveBid) {
  if (!before || after.bid_count <= before.bid_count) return null;
  const leader = name(after.highest_bidder_name, after.highest_bidder);
  const extended = extensionS(before, after);
  const tail = extended ? ` ${extensionText(extended)}` : "";
  const lot = lotName(after, me);
  if (after.highest_bidder === me.address) return extended ? { text: `${lot}: ${extensionText(extended)}`, urgent: false } : null;
  if (before.highest_bidder === me.address) {
    return { text: `You were outbid on ${lot}: ${leader} bid ${price(after.highest_bid_wei)};`
      + ` at least ${price(after.min_next_bid_wei)} leads.${tail}`, urgent: true };
  }
  if (after.seller === me.address || haveBid) {
    return { text: `${leader} bid ${price(after.highest_bid_wei)} on ${lot}.${tail}`, urgent: false };
  }
  return extended ? { text: `${lot}: ${extensionText(extended)}`, urgent: false } : null;
}

/* An auction's end: sold to whom at what, unsold, or withdrawn; in the seller's and the
   winner's words to them. */
export function resultNews(l, me, haveBid) {
  const lot = lotName(l, me);
  const winner = name(l.highest_bidder_name, l.highest_bidder);
  if (l.status === "sold") {
    if (l.highest_bidder === me.address) {
      return { text: `You won ${lot} at ${price(l.highest_bid_wei)}: the deal opens on the escrow.`, urgent: false };
    }
    const lost = haveBid ? " Your bid did not win." : "";
    const cap = lot.charAt(0).toUpperCase() + lot.slice(1);
    return { text: `${cap} sold to ${winner} at ${price(l.highest_bid_wei)}.${lost}`, urgent: false };
  }
  if (l.status === "unsold") {
    const cap = lot.charAt(0).toUpperCase() + lot.slice(1);
    return { text: `${cap} went unsold: no bid by the end.`, urgent: false };
  }
  if (l.status === "cancelled" && l.seller !== me.address) {
    return { text: `${name(l.seller_name, l.seller)} withdrew ${lot}.`, urgent: false };
  }
  return null;
}

function dealParties(d, me) {
  const buying = d.buyer === me.address;
  return buying ? `you buy ${d.energy_wh} Wh from ${name(d.seller_name, d.seller)}`
    : `${name(d.buyer_name, d.buyer)} buys your ${d.energy_wh} Wh`;
}

function percent(d) { return d.energy_wh ? Math.floor((100 * d.delivered_wh) / d.energy_wh) : 0; }

/* The highest milestone a deal passed between two views (null if none). */
export function milestonePassed(before, after) {
  const was = percent(before);
  const now = percent(after);
  const passed = MILESTONES.filter((m) => was < m && now >= m);
  return passed.length ? passed[passed.length - 1] : null;
}

/* What a deal's push says: its start, a milestone, a pause, its end (and how it ended). */
export function dealNews(before, after, me) {
  const title = `Deal #${after.id}`;
  if (after.status === "active" && (!before || before.status === "opening")) {
    return { text: `${title} started: ${dealParties(after, me)} at ${price(after.price_wei)}; the relays are on.`, urgent: false, show: true };
  }
  if (after.status === "paused" && (!before || before.status !== "paused")) {
    return { text: `${title} paused${after.error ? `: ${after.error}` : ""}; the relays are off until both meters answer.`, urgent: false, show: true };
  }
  if (after.status === "active" && before && before.status === "paused") {
    return { text: `${title} resumed: the relays are on again.`, urgent: false, show: true };
  }
  if (after.status === "closed" && (!before || before.status !== "closed")) {
    const refund = after.refunded_wei ? `, ${formatEth(after.refunded_wei)} ETH refunded to the buyer` : "";
    return { text: `${title} ended (${after.close_reason || "closed"}): ${after.delivered_wh} of ${after.energy_wh} Wh delivered,`
      + ` ${formatEth(after.paid_wei)} ETH paid${refund}.`, urgent: false, show: true };
  }
  if (after.status === "failed" && (!before || before.status !== "failed")) {
    return { text: `${title} failed: ${after.error || "the escrow did not open it"}. Nothing was locked.`, urgent: true };
  }
  const milestone = before ? milestonePassed(before, after) : null;
  if (milestone !== null && (after.status === "active" || after.status === "closing")) {
    return { text: `${title}: ${after.delivered_wh} of ${after.energy_wh} Wh delivered (${milestone} %).`, urgent: false };
  }
  return null;
}
