/* The wallet view: balances pushed live, escrow deposit and withdrawal notice, send Ether,
   meters waiting for the owner's consent, the keystore's download, and who makes the blocks.
   Every transaction and consent is signed in the page. */
import { api } from "./api.js";
import * as keys from "./keys.js";
import * as signer from "./signer.js";
import { $, duration, el, formatEnergy, formatEth, formatEther, offerDownload, parseEther, toast, txItem } from "./util.js";

let last = null;       // the last wallet summary shown
let names = {};        // address -> participant name, for the send confirmation
let checkedSend = null;
let clock = null;
let onTx = null;      // asks the wallet channel for a push after each transaction

function render(w) {
  last = w;
  $("wallet-address").textContent = w.address;
  // Tokens and generation are a producer's: a consumer has none to sell and makes none.
  for (const card of document.querySelectorAll("#view-wallet .producer-only")) card.hidden = w.role !== "producer";
  $("tokens").textContent = formatEnergy(w.tokens_wh);
  $("unlisted").textContent = formatEnergy(w.unlisted_wh);
  $("eth").textContent = formatEth(w.eth_wei);
  $("escrow-free").textContent = formatEth(w.escrow_free_wei);
  $("escrow-locked").textContent = formatEth(w.escrow_locked_wei);
  $("escrow-community").textContent = formatEth(w.community_free_wei);
  const gen = w.generation;
  $("gen-power").textContent = gen && gen.online ? gen.power_w : "–";
  $("gen-energy").textContent = gen && gen.online && gen.energy_in_kwh !== null ? formatEnergy(gen.energy_in_kwh * 1000) : "–";
  $("gen-soc").textContent = gen && gen.soc !== null && gen.soc !== undefined ? `${Math.round(gen.soc * 100)} %` : "n/a";
  $("pending").replaceChildren(...w.pending.map(txItem));
  $("pending-count").textContent = w.pending.length;
  $("recent").replaceChildren(...w.recent.filter((t) => t.status !== "pending" && t.status !== "queued").map(txItem));
  if (w.escrow_notice_s !== undefined) $("escrow-notice").textContent = duration(w.escrow_notice_s);
  renderWithdrawal();
  if (w.mining) renderMining(w.mining);
  renderNodes(w.nodes || []);
  if (w.interval) renderInterval(w.interval);
}

/* The interval market's current interval: earned (sold) or cost (bought) so far, and when the
   unsettled fills settle on chain (at the settlement threshold, at the latest at day's end). */
function renderInterval(c) {
  const f = c.fill;
  const sold = f && f.side === "sell";
  const amount = f ? BigInt(f.amount_so_far_wei || 0) : 0n;
  $("interval-amount").textContent = amount ? `${sold ? "+" : "−"}${formatEth(amount)}` : "0";
  $("interval-what").textContent = f
    ? `In this interval you ${sold ? "sold" : "bought"} ${f.wh} Wh at ${formatEth(f.price_wei)} ETH/kWh; `
      + `${f.metered_so_far_wh} Wh metered so far (${sold ? "earned" : "cost"} up to now).`
    : "Nothing traded for you in this interval.";
  // Counted in intervals: the wallet is pushed only when it changes, so no seconds tick here.
  const after = Math.max(0, Math.round((Number(c.day_ends_at) - Number(c.end)) / (Number(c.end) - Number(c.start))));
  $("interval-settles").textContent = BigInt(c.unsettled_wei || 0) > 0n || c.unsettled_wh > 0
    ? `Not yet settled: ${c.unsettled_wh} Wh, ${formatEth(c.unsettled_wei)} ETH. Settles on chain once `
      + `${c.settles_at_wh} Wh are unsettled, at the latest at the day's end, `
      + (after ? `when ${after} more interval${after === 1 ? "" : "s"} after this one have passed.` : "when this interval ends.")
    : "Nothing waits for settlement on chain.";
}

/* A pending withdrawal, counting down to when it can be completed. */
function renderWithdrawal() {
  const pending = last && last.withdrawal && BigInt(last.withdrawal.amount_wei || 0) > 0n ? last.withdrawal : null;
  $("withdrawal").hidden = !pending;
  if (!pending) return;
  $("withdrawal-amount").textContent = formatEth(pending.amount_wei);
  const left = pending.available_at - Date.now() / 1000;
  $("withdrawal-when").textContent = left > 0 ? `in ${duration(left)}` : "now";
  $("complete-withdrawal").hidden = left > 0;
}

export function renderMining(m) {
  $("mining-state").textContent = m.on === null || m.on === undefined ? "not controllable" : m.on ? "running" : "stopped";
  $("block").textContent = m.block ?? "–";
  $("block-period").textContent = m.block_period === null || m.block_period === undefined ? "n/a"
    : m.block_period === 0 ? "a block per transaction" : `${m.block_period} s`;
  const by = m.by || (m.block_production && m.block_production.by);
  const why = m.why || (m.block_production && m.block_production.why);
  $("mining-why").textContent = by ? `Blocks are made by ${by === "operator" ? "the portal's operator" : "the participants' own nodes"}${why ? `: ${why}` : ""}.` : "";
}

/* The person's machines' own signer nodes (their bridges report them), each with its toggle
   when the bridge takes one; a refusal (the quorum) is shown as the bridge's sentence. */
function renderNodes(nodes) {
  $("nodes-card").hidden = nodes.length === 0;
  $("nodes").replaceChildren(...nodes.map((n) => {
    const text = n.error ? `Machine ${n.bridge}: ${n.error}`
      : `Machine ${n.bridge}: signer ${n.signer || "none"} · sealing ${n.sealing ? "yes" : "no"}`
        + ` · ${n.peers} peer${n.peers === 1 ? "" : "s"} · ${n.sealing_signers} of ${n.signers} signers sealing`
        + (n.reporting ? "" : " (its bridge stopped reporting)");
    const item = el("li", { "data-bridge": n.bridge }, el("span", { class: "mono", textContent: text }));
    if (!n.error && n.reporting && n.toggles) {
      const on = !n.sealing;
      const button = el("button", { type: "button", class: "secondary node-toggle",
        textContent: on ? "Start sealing" : "Stop sealing" });
      button.addEventListener("click", async () => {
        button.disabled = true;
        $("node-error").textContent = "";
        try {
          await api("POST", `/api/nodes/${encodeURIComponent(n.bridge)}/sealing`, { on });
          toast(on ? "Your node seals again" : "Your node stopped sealing");
        } catch (err) { $("node-error").textContent = err.message; button.disabled = false; }
      });
      item.append(" ", button);
    }
    return item;
  }));
}

async function act(promise, done) {
  try {
    const record = await promise;
    toast(record ? `${done}: ${record.tx_hash}` : done);
    return record || true;
  } catch (err) { toast(err.message, true); return null; }
}

function amountChecked() {
  const text = $("deposit-amount").value;
  return { amount_eth: text.trim(), wei: parseEther(text) };
}

async function reviewSend() {
  $("send-error").textContent = "";
  closeConfirm();
  const to = $("send-to").value.trim();
  const amount = $("send-amount").value.trim();
  let prepared;
  try {
    parseEther(amount);
    prepared = await api("POST", "/api/tx/prepare", { action: "send", to, amount_eth: amount });
  } catch (err) { $("send-error").textContent = err.message; return; }
  const target = prepared.tx.to;
  const who = names[target] ? ` (${names[target]})` : "";
  checkedSend = { to, amount, to_address: target, amount_wei: prepared.tx.value };
  $("send-summary").textContent = `Send ${formatEther(prepared.tx.value, 18)} ETH to ${target}${who}? `
    + `You have ${formatEth(last ? last.eth_wei : null)} ETH. This cannot be undone.`;
  $("send-confirm").hidden = false;
  $("send-yes").focus();
}

function closeConfirm() { checkedSend = null; $("send-confirm").hidden = true; }

async function confirmSend() {
  if (!checkedSend) return;
  const { to, amount, to_address, amount_wei } = checkedSend;
  closeConfirm();
  // Prepared again for a fresh nonce; the check holds it to the address and amount reviewed.
  if (await act(signer.transact("send", { to, amount_eth: amount }, { to_address, amount_wei }), "Ether sent")) {
    $("send-amount").value = "";
  }
}

function consentRow(item) {
  const button = el("button", { type: "button", class: "sign-consent", textContent: "Sign" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const signature = await signer.signConsent(item);
      const record = await api("POST", "/api/meters/consent", { meter: item.meter, deadline: item.deadline, signature });
      signer.remember(record, `Enroll meter ${item.meter}`);
      toast(`Meter ${item.meter} consented: its enrollment is sent`);
    } catch (err) { toast(err.message, true); }
    refreshConsents();
  });
  return el("tr", { "data-meter": item.meter },
    el("td", { class: "mono", textContent: item.meter }), el("td", { textContent: item.board_id || "–" }),
    el("td", { textContent: item.kind }), el("td", { textContent: item.rated_power_w }), el("td", {}, button));
}

async function refreshConsents() {
  try {
    const { consents } = await api("GET", "/api/meters/consent");
    $("consents").querySelector("tbody").replaceChildren(...consents.map(consentRow));
    $("consents-card").hidden = consents.length === 0;
  } catch (err) { toast(err.message, true); }
}

function bind(ctx) {
  $("deposit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let amount;
    try { amount = amountChecked(); } catch (err) { toast(err.message, true); return; }
    const market = Number($("deposit-market").value);
    if (await act(signer.transact("deposit", { amount_eth: amount.amount_eth, market }, { amount_wei: amount.wei }), "Deposit sent")) {
      $("deposit-amount").value = "";
    }
  });
  $("withdraw-button").addEventListener("click", async () => {
    let amount;
    try { amount = amountChecked(); } catch (err) { toast(err.message, true); return; }
    const notice = last && last.escrow_notice_s !== undefined ? ` (yours in ${duration(last.escrow_notice_s)})` : "";
    const market = Number($("deposit-market").value);
    if (await act(signer.transact("withdraw", { amount_eth: amount.amount_eth, market }), `Withdrawal asked${notice}`)) {
      $("deposit-amount").value = "";
    }
  });
  $("complete-withdrawal").addEventListener("click", () => act(signer.transact("complete_withdrawal", {}), "Withdrawal completed"));
  $("send-form").addEventListener("submit", (event) => { event.preventDefault(); reviewSend(); });
  $("send-no").addEventListener("click", () => { closeConfirm(); $("send-to").focus(); });
  $("send-yes").addEventListener("click", confirmSend);
  $("download-keystore").addEventListener("click", () => {
    const json = keys.keystoreJson();
    if (!json) return;
    const link = el("a");
    offerDownload(link, json, `UTC--gridbid--${ctx.session.me.address.slice(2).toLowerCase()}.json`);
    link.click();
  });
}

export default {
  init(ctx) { bind(ctx); },
  async start(ctx) {
    $("download-keystore").hidden = signer.current() !== "keystore";
    for (const card of document.querySelectorAll("#view-wallet .producer-only")) card.hidden = ctx.session.me.role !== "producer";
    const socket = ctx.session.sockets.wallet;
    socket.on("wallet", render);
    onTx = () => socket.emit("refresh");
    document.addEventListener("gridbid:tx", onTx);
    clock = setInterval(renderWithdrawal, 1000);
    try {
      names = Object.fromEntries((await api("GET", "/api/accounts")).accounts.map((a) => [a.address, a.name]));
      render(await api("GET", "/api/wallet"));
    } catch (err) { toast(err.message, true); }
    refreshConsents();
  },
  stop() {
    clearInterval(clock);
    document.removeEventListener("gridbid:tx", onTx);
    last = null;
    closeConfirm();
    for (const id of ["tokens", "unlisted", "eth", "escrow-free", "escrow-locked", "wallet-address",
      "escrow-community", "interval-amount", "interval-what"]) $(id).textContent = "–";
    $("interval-settles").textContent = "";
    $("pending").replaceChildren();
    $("recent").replaceChildren();
    $("consents").querySelector("tbody").replaceChildren();
    $("consents-card").hidden = true;
    $("nodes").replaceChildren();
    $("nodes-card").hidden = true;
    $("node-error").textContent = "";
  },
};
