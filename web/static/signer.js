/* The session's signer, keystore or browser wallet, behind one interface; and what it checks.

The portal suggests every transaction (nonce, gas, fees), but the portal is not trusted with
anyone's money: before signing, the page checks that what it is asked to sign is what the
person asked for (recipient, amount, contract, function). A bid it builds itself from the
listing's view and the chain's facts (the seller's signed offer, recomputed to its hash).
*/
import { ethers } from "ethers";
import { api } from "./api.js";
import * as injected from "./injected.js";
import * as keys from "./keys.js";

let kind = null;    // "keystore" | "injected" | null
let chain = null;   // GET /api/chain: chain id, RPC URL, contract addresses
const sent = [];    // every transaction hash of this session, newest first

export function use(which, chainFacts) { kind = which; chain = chainFacts; }
export function current() { return kind; }
export function chainFacts() { return chain; }
export function sessionTxs() { return sent; }
export function address() { return kind === "injected" ? injected.address() : keys.address(); }

export function forget() {
  if (kind === "keystore") keys.drop();
  if (kind === "injected") injected.forget();
  kind = null;
  sent.length = 0;
}

const ABI = new ethers.Interface([
  "function deposit(uint8 market) payable", "function deposit() payable",
  "function requestWithdrawal(uint8 market, uint256 amount)", "function withdraw(uint256 amount)",
  "function completeWithdrawal(uint8 market)", "function closeDeal(uint256 dealId)",
  "function approve(address spender, uint256 value)",
  "function cancelSellOrder((address seller, address meter, uint256 floorWeiPerKWh, uint64 maxWhPerInterval, uint64 reserveWh, uint64 expiry, uint64 nonce) order)",
  "function cancelBuyOrder((address buyer, address meter, uint256 capWeiPerKWh, uint64 maxWhPerInterval, uint64 expectedWh, uint256 dailyBudgetWei, uint64 expiry, uint64 nonce) order)",
]);
const FUNCTIONS = {
  deposit: ["deposit"], withdraw: ["requestWithdrawal", "withdraw"],
  complete_withdrawal: ["completeWithdrawal"], approve: ["approve"], close: ["closeDeal"],
  cancel_listing: ["approve"], cancel_order: ["cancelSellOrder", "cancelBuyOrder"],
};

/* Refuse to sign a transaction that is not the one asked for. */
export function check(action, params, tx) {
  const wrong = (what) => { throw new Error(`the portal asked this page to sign ${what}: refused`); };
  if (!chain) wrong("before the chain's facts were known");
  if (BigInt(tx.chainId) !== BigInt(chain.chain_id)) wrong(`for chain ${tx.chainId}, not ${chain.chain_id}`);
  const to = ethers.getAddress(tx.to);
  const value = BigInt(tx.value || 0);
  const { EnergyEscrow: escrow, EnergyToken: token } = chain.contracts;
  if (action === "send") {
    if (params.to_address && to !== ethers.getAddress(params.to_address)) wrong(`a payment to ${to}`);
    if (value !== BigInt(params.amount_wei)) wrong(`a payment of ${value} wei`);
    if (tx.data && tx.data !== "0x") wrong("a contract call instead of a payment");
    return;
  }
  const approval = action === "approve" || action === "cancel_listing";
  const target = action === "cancel_order" ? chain.contracts.IntervalSettlement : approval ? token : escrow;
  if (!target || to !== ethers.getAddress(target)) wrong(`a call to ${to}`);
  const call = ABI.parseTransaction({ data: tx.data, value });
  if (!call || !FUNCTIONS[action].includes(call.name)) wrong(`another function (${call ? call.name : "unknown"})`);
  // Into (or out of) the market asked: deposit(uint8)/requestWithdrawal(uint8, …) name it.
  if (params.market !== undefined && ["deposit", "withdraw"].includes(action) && call.args.length
      && ["deposit", "requestWithdrawal"].includes(call.name) && Number(call.args[0]) !== Number(params.market)) {
    wrong(`a ${action} for market ${call.args[0]}, not ${params.market}`);
  }
  const paid = action === "deposit" ? BigInt(params.amount_wei) : 0n;
  if (value !== paid) wrong(`a payment of ${value} wei`);
  if (approval && ethers.getAddress(call.args[0]) !== ethers.getAddress(escrow)) wrong("an approval for someone else");
  if (action === "close" && params.chain_deal_id !== undefined && params.chain_deal_id !== null
      && BigInt(call.args[0]) !== BigInt(params.chain_deal_id)) wrong(`the close of another deal (${call.args[0]})`);
  if (action === "cancel_order") checkCancel(params, call, wrong);
}

/* A cancelSellOrder/cancelBuyOrder must name exactly the order being cancelled. */
function checkCancel(params, call, wrong) {
  const kind = params.kind === "sell" ? "sell" : "buy";
  if (call.name !== (kind === "sell" ? "cancelSellOrder" : "cancelBuyOrder")) wrong(`a cancel of a ${call.name}`);
  const [fields] = Object.values(ORDER_TYPES[kind]);
  const named = call.args[0];
  for (const { name, type } of fields) {
    const same = type === "address" ? ethers.getAddress(named[name]) === ethers.getAddress(params.order[name])
      : BigInt(named[name]) === BigInt(params.order[name]);
    if (!same) wrong(`the cancel of another order (its ${name} is ${named[name]})`);
  }
}

/* A transaction the portal prepared with an answer (e.g. a cancelled order's cancelOrder):
   checked, signed or sent by the wallet, and queued; the portal's record. */
export async function sendPrepared(action, prepared, checked) {
  if (!prepared || !prepared.tx) return null;
  check(action, checked, prepared.tx);
  if (kind === "keystore") {
    const raw = await keys.signTransaction(prepared.tx);
    return remember(await api("POST", "/api/tx", { raw }), prepared.label);
  }
  const hash = await injected.sendTransaction(prepared.tx, chain);
  return remember(await api("POST", "/api/tx/sent", { tx_hash: hash, label: prepared.label }), prepared.label, hash);
}

/* Prepare, check, sign (or let the wallet send) and submit one action; the portal's record. */
export async function transact(action, params = {}, checked = {}) {
  const prepared = await api("POST", "/api/tx/prepare", { action, ...params });
  if (!prepared.needed) return null;
  check(action, { ...params, ...checked }, prepared.tx);
  if (kind === "keystore") {
    const raw = await keys.signTransaction(prepared.tx);
    return remember(await api("POST", "/api/tx", { raw }), prepared.label);
  }
  const hash = await injected.sendTransaction(prepared.tx, chain);
  return remember(await api("POST", "/api/tx/sent", { tx_hash: hash, label: prepared.label }), prepared.label, hash);
}

/* A prepared transaction the portal sends with something else (a listing's approval, a
   close): signed bytes for a keystore, or the hash a browser wallet sent it under. */
export async function signPrepared(action, params, prepared, checked = {}) {
  check(action, { ...params, ...checked }, prepared.tx);
  if (kind === "keystore") {
    const raw = await keys.signTransaction(prepared.tx);
    // Its hash is known before the portal sends it: a signed transaction's keccak.
    remember({ tx_hash: ethers.keccak256(raw), status: "signed" }, prepared.label);
    return { raw };
  }
  const hash = await injected.sendTransaction(prepared.tx, chain);
  remember({ tx_hash: hash, status: "sent" }, prepared.label, hash);
  return { hash };
}

export function remember(record, label, hash) {
  const entry = { tx_hash: record.tx_hash || hash, status: record.status || "queued", label: record.label || label };
  sent.unshift(entry);
  document.dispatchEvent(new CustomEvent("gridbid:tx", { detail: entry }));
  return entry;
}

function signTyped(terms) {
  const sign = kind === "keystore" ? keys.signTypedData : injected.signTypedData;
  return sign(terms.domain, terms.types, terms.message);
}

function checkDomain(terms, contract, problems) {
  if (chain && ethers.getAddress(terms.domain.verifyingContract) !== ethers.getAddress(chain.contracts[contract])) {
    problems.push(`it is for another contract than the ${contract}`);
  }
  if (chain && BigInt(terms.domain.chainId) !== BigInt(chain.chain_id)) problems.push("it is for another chain");
}

function refuse(what, problems) {
  if (problems.length) throw new Error(`the ${what} the portal asked you to sign is not yours: ${problems.join(", ")}`);
}

/* Check an offer's typed data is this seller's, from its meter, of the energy and floor asked. */
export async function signOffer(terms, asked, meter) {
  const m = terms.message;
  const problems = [];
  if (terms.primaryType !== "Offer") problems.push("it is not an Offer");
  if (ethers.getAddress(m.seller) !== address()) problems.push(`the seller is ${m.seller}`);
  if (meter && ethers.getAddress(m.sellerMeter) !== ethers.getAddress(meter)) problems.push(`the meter is ${m.sellerMeter}`);
  if (BigInt(m.energyWh) !== BigInt(asked.energy_wh)) problems.push(`it sells ${m.energyWh} Wh`);
  if (BigInt(m.floorPriceWeiPerKWh) !== BigInt(asked.start_price_wei)) problems.push(`its floor is ${m.floorPriceWeiPerKWh} wei/kWh`);
  checkDomain(terms, "EnergyEscrow", problems);
  refuse("offer", problems);
  return signTyped(terms);
}

/* Check an ERC-2612 permit lets only the escrow take our tokens, as many as the portal said. */
export async function signPermit(terms, value) {
  const m = terms.message;
  const problems = [];
  if (terms.primaryType !== "Permit") problems.push("it is not a Permit");
  if (ethers.getAddress(m.owner) !== address()) problems.push(`the owner is ${m.owner}`);
  if (chain && ethers.getAddress(m.spender) !== ethers.getAddress(chain.contracts.EnergyEscrow)) problems.push(`the spender is ${m.spender}`);
  if (BigInt(m.value) !== BigInt(value)) problems.push(`it allows ${m.value} Wh`);
  checkDomain(terms, "EnergyToken", problems);
  refuse("permit", problems);
  return { value: String(m.value), deadline: String(m.deadline), signature: await signTyped(terms) };
}

/* The escrow's EIP-712 domain name and Bid type, the page's own copies (contracts/bindings.py
   ESCROW_DOMAIN, BID_TYPES): a bid is built and signed here from the listing's view alone. */
const ESCROW_DOMAIN = { name: "gridbid EnergyEscrow", version: "1" };
const BID = [
  { name: "offer", type: "bytes32" }, { name: "buyer", type: "address" },
  { name: "buyerMeter", type: "address" }, { name: "priceWeiPerKWh", type: "uint256" },
  { name: "maxWh", type: "uint256" }, { name: "nonce", type: "uint256" },
  { name: "expiry", type: "uint64" },
];

function nonce63() {
  const [n] = crypto.getRandomValues(new BigUint64Array(1));
  return (n >> 1n).toString();  // 63 bits, as the portal's own terms carry
}

/* Build our bid on a listing at priceWei from its view (the seller's signed offer, its hash,
   the lot, the least expiry the portal takes) and sign it: { bid, signature } to post once.
   No meter yet: the zero address, which the portal refuses with its own sentence. */
export async function signBid(listing, priceWei, meter) {
  const problems = [];
  if (!chain) throw new Error("the chain's facts are not known yet: sign in again");
  // A number, as the portal's own terms carry it: a browser wallet gets the domain as JSON.
  const domain = { ...ESCROW_DOMAIN, chainId: Number(chain.chain_id), verifyingContract: chain.contracts.EnergyEscrow };
  let offerHash = null;
  if (!listing.offer) problems.push("the listing has no signed offer");
  else {
    offerHash = ethers.TypedDataEncoder.hash(domain, { Offer: OFFER }, listing.offer);
    const seller = ethers.verifyTypedData(domain, { Offer: OFFER }, listing.offer, listing.offer_signature);
    if (seller !== ethers.getAddress(listing.seller)) problems.push("the listing's offer is not its seller's");
    if (BigInt(listing.offer.energyWh) !== BigInt(listing.energy_wh)) problems.push("the listing's offer sells another amount of energy");
    if (listing.offer_hash && listing.offer_hash.toLowerCase() !== offerHash.toLowerCase()) problems.push("the listing publishes another offer hash than its offer's");
  }
  if (listing.bid_expiry_min === undefined || listing.bid_expiry_min === null) problems.push("the listing does not say which expiry a bid needs");
  refuse("bid", problems);
  const bid = {
    offer: offerHash, buyer: address(), buyerMeter: meter ? ethers.getAddress(meter) : ethers.ZeroAddress,
    priceWeiPerKWh: String(priceWei), maxWh: String(listing.energy_wh), nonce: nonce63(),
    expiry: String(listing.bid_expiry_min),
  };
  return { bid, signature: await signTyped({ domain, types: { Bid: BID }, message: bid }) };
}

/* Check a meter consent names this owner, the energy token and this chain, then sign it. */
export async function signConsent(item) {
  const { domain, types, message } = item.typed_data;
  const problems = [];
  if (ethers.getAddress(message.owner) !== address()) problems.push(`the owner is ${message.owner}`);
  if (ethers.getAddress(message.meter) !== ethers.getAddress(item.meter)) problems.push(`it is for meter ${message.meter}`);
  if (BigInt(message.ratedPowerW) !== BigInt(item.rated_power_w)) problems.push(`its rating is ${message.ratedPowerW} W`);
  if (chain && ethers.getAddress(domain.verifyingContract) !== ethers.getAddress(chain.contracts.EnergyToken)) {
    problems.push("it is for another token");
  }
  if (chain && BigInt(domain.chainId) !== BigInt(chain.chain_id)) problems.push("it is for another chain");
  if (problems.length) throw new Error(`the consent the portal asked you to sign is not yours: ${problems.join(", ")}`);
  const sign = kind === "keystore" ? keys.signTypedData : injected.signTypedData;
  return sign(domain, { MeterConsent: types.MeterConsent }, message);
}

/* The escrow's Offer type, the page's own copy: a listing's offer hash is recomputed from it. */
const OFFER = [
  { name: "seller", type: "address" }, { name: "sellerMeter", type: "address" },
  { name: "energyWh", type: "uint256" }, { name: "floorPriceWeiPerKWh", type: "uint256" },
  { name: "deadline", type: "uint64" }, { name: "nonce", type: "uint256" },
];

/* The Sign-In with Ethereum message must name this page's host, our address and chain. */
export function checkLogin(message, who) {
  const lines = message.split("\n");
  const problems = [];
  if (lines[0] !== `${location.host} wants you to sign in with your Ethereum account:`) problems.push("it names another site");
  if (lines[1] !== who) problems.push("it names another account");
  const uri = lines.find((l) => l.startsWith("URI: "));
  if (!uri || !uri.slice(5).startsWith(location.origin)) problems.push("its URI is another site's");
  const id = lines.find((l) => l.startsWith("Chain ID: "));
  if (chain && (!id || BigInt(id.slice(10)) !== BigInt(chain.chain_id))) problems.push("it names another chain");
  if (problems.length) throw new Error(`the sign-in message is not for this page: ${problems.join(", ")}`);
}

/* Sign in: the portal's message for `who`, checked and signed; the login answer. */
export async function signIn(who, sign) {
  const { message } = await api("POST", "/api/login/message", { address: who });
  checkLogin(message, who);
  return api("POST", "/api/login", { message, signature: await sign(message) });
}

/* The interval settlement's order types, the page's own copy: the page signs with these, never
   with types the portal sends (SPEC: contracts/bindings.py SELL_ORDER, BUY_ORDER). */
const ORDER_TYPES = {
  sell: { SellOrder: [
    { name: "seller", type: "address" }, { name: "meter", type: "address" },
    { name: "floorWeiPerKWh", type: "uint256" }, { name: "maxWhPerInterval", type: "uint64" },
    { name: "reserveWh", type: "uint64" }, { name: "expiry", type: "uint64" }, { name: "nonce", type: "uint64" },
  ] },
  buy: { BuyOrder: [
    { name: "buyer", type: "address" }, { name: "meter", type: "address" },
    { name: "capWeiPerKWh", type: "uint256" }, { name: "maxWhPerInterval", type: "uint64" },
    { name: "expectedWh", type: "uint64" }, { name: "dailyBudgetWei", type: "uint256" },
    { name: "expiry", type: "uint64" }, { name: "nonce", type: "uint64" },
  ] },
};

/* Check a standing order's typed data is this owner's, from its meter, with the limits asked
   (price, Wh per interval, expected draw, budget), for the interval settlement; sign it. */
export async function signStandingOrder(terms, side, asked, meter) {
  const m = terms.message;
  const problems = [];
  const sell = side === "sell";
  const primary = sell ? "SellOrder" : "BuyOrder";
  if (terms.primaryType !== primary) problems.push(`it is not a ${primary}`);
  const owner = sell ? m.seller : m.buyer;
  if (!owner || ethers.getAddress(owner) !== address()) problems.push(`the ${sell ? "seller" : "buyer"} is ${owner}`);
  if (meter && (!m.meter || ethers.getAddress(m.meter) !== ethers.getAddress(meter))) problems.push(`the meter is ${m.meter}`);
  const price = sell ? m.floorWeiPerKWh : m.capWeiPerKWh;
  if (BigInt(price) !== BigInt(asked.price_wei)) problems.push(`its ${sell ? "floor" : "cap"} is ${price} wei/kWh`);
  if (BigInt(m.maxWhPerInterval) !== BigInt(asked.max_wh_per_interval || 0)) problems.push(`it allows ${m.maxWhPerInterval} Wh per interval`);
  if (!sell && BigInt(m.expectedWh) !== BigInt(asked.expected_wh)) problems.push(`it expects ${m.expectedWh} Wh`);
  if (!sell && BigInt(m.dailyBudgetWei) !== BigInt(asked.daily_budget_wei || 0)) problems.push(`its daily budget is ${m.dailyBudgetWei} wei`);
  if (sell && asked.reserve_wh !== undefined && BigInt(m.reserveWh) !== BigInt(asked.reserve_wh)) problems.push(`it keeps ${m.reserveWh} Wh`);
  if (Number(m.expiry) * 1000 < Date.now()) problems.push("it has expired already");
  checkDomain(terms, "IntervalSettlement", problems);
  refuse("order", problems);
  const sign = kind === "keystore" ? keys.signTypedData : injected.signTypedData;
  return sign(terms.domain, ORDER_TYPES[side], m);
}
