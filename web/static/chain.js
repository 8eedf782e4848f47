/* The chain view: chain id, the RPC proxy's URL, the contracts and how they were built, who
   makes the blocks, every transaction of this session by hash, and the network for a wallet. */
import { api } from "./api.js";
import * as injected from "./injected.js";
import * as signer from "./signer.js";
import { $, txItem, toast } from "./util.js";

let facts = null;

async function load() {
  try {
    facts = await api("GET", "/api/chain");
  } catch (err) { $("chain-error").textContent = err.message; return; }
  $("chain-error").textContent = "";
  $("chain-id").textContent = facts.chain_id;
  $("chain-rpc").textContent = new URL(facts.rpc_url, location.origin).href;
  $("chain-token").textContent = facts.contracts.EnergyToken;
  $("chain-escrow").textContent = facts.contracts.EnergyEscrow;
  $("chain-compiler").textContent = facts.compiler || "–";
  $("chain-evm").textContent = facts.evm_version || "–";
  const made = facts.block_production || {};
  $("chain-producer").textContent = made.by === "operator" ? "the portal's operator"
    : made.by === "participants" ? "the participants' own nodes" : made.by || "–";
  $("chain-why").textContent = made.why ? `(${made.why})` : "";
  $("add-network").hidden = !injected.available();
}

async function renderTxs(ctx) {
  if (!ctx.session.me) { $("chain-txs").replaceChildren(); return; }
  const seen = new Map();
  for (const tx of signer.sessionTxs()) seen.set(tx.tx_hash, tx);
  try {
    const w = await api("GET", "/api/wallet");
    for (const tx of [...w.pending, ...w.recent]) seen.set(tx.tx_hash, tx);
  } catch (e) { /* this session's own list still shows */ }
  $("chain-txs").replaceChildren(...[...seen.values()].map(txItem));
}

export default {
  init() {
    $("add-network").addEventListener("click", async () => {
      try { await injected.addChain(facts); toast("Network added to your wallet"); }
      catch (err) { $("chain-error").textContent = err.message; }
    });
  },
  show(ctx) { load(); renderTxs(ctx); },
  stop() { $("chain-txs").replaceChildren(); },
};
