/* The wallet page: balances pushed live over Socket.IO, escrow, block production, send Ether. */
"use strict";

function txItem(tx) {
  const status = el("span", { class: `status ${tx.status}`, textContent: tx.status });
  return el("li", { "data-hash": tx.tx_hash }, status, " ", tx.label, " ",
    el("code", { textContent: short(tx.tx_hash), title: tx.tx_hash }),
    tx.error ? el("span", { class: "error", textContent: ` — ${tx.error}` }) : "");
}

function render(w) {
  $("wallet-address").textContent = w.address;
  $("tokens").textContent = formatKwh(w.tokens_wh);
  $("unlisted").textContent = formatKwh(w.unlisted_wh);
  $("eth").textContent = formatEther(w.eth_wei);
  $("escrow-free").textContent = formatEther(w.escrow_free_wei);
  $("escrow-locked").textContent = formatEther(w.escrow_locked_wei);
  const gen = w.generation;
  $("gen-power").textContent = gen && gen.online ? gen.power_w : "–";
  $("gen-energy").textContent = gen && gen.online ? gen.energy_in_kwh.toFixed(3) : "–";
  $("gen-soc").textContent = gen && gen.soc !== null && gen.soc !== undefined ? `${Math.round(gen.soc * 100)} %` : "n/a";
  $("pending").replaceChildren(...w.pending.map(txItem));
  $("pending-count").textContent = w.pending.length;
  $("recent").replaceChildren(...w.recent.filter((t) => t.status !== "pending" && t.status !== "queued").map(txItem));
  renderMining(w.mining);
}

function renderMining(m) {
  $("mining-state").textContent = `${m.on === null ? "not reported" : m.on ? "running" : "stopped"}, by ${m.by === "operator" ? "the operator" : "the participants"}`;
  $("mining-why").textContent = m.why;
  $("block").textContent = m.block;
  $("block-period").textContent = m.block_period === null ? "n/a"
    : m.block_period === 0 ? "a block per transaction" : `${m.block_period} s`;
}

async function act(promise, done) {
  try { const result = await promise; toast(done); socket.emit("refresh"); return result; }
  catch (err) { toast(err.message, true); return null; }
}

const socket = io("/wallet", { transports: ["websocket", "polling"] });
socket.on("wallet", render);

document.addEventListener("DOMContentLoaded", async () => {
  // Handlers first: a click before the first data arrives must not submit the bare form.
  $("deposit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await act(api("POST", "/api/escrow/deposit", { amount_eth: $("deposit-amount").value }), "Deposit sent")) $("deposit-amount").value = "";
  });
  $("withdraw-button").addEventListener("click", async () => {
    if (await act(api("POST", "/api/escrow/withdraw", { amount_eth: $("deposit-amount").value }), "Withdrawal sent")) $("deposit-amount").value = "";
  });
  // Sending is two steps: the portal checks the address (checksum) and amount, the person
  // reads what will happen, then confirms.
  let checked = null;
  const closeConfirm = () => { checked = null; $("send-confirm").hidden = true; };
  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("send-error").textContent = "";
    closeConfirm();
    try {
      checked = await api("POST", "/api/send/check",
        { to: $("send-to").value.trim(), amount_eth: $("send-amount").value.trim() });
    } catch (err) { $("send-error").textContent = err.message; return; }
    const who = checked.to_name ? ` (${checked.to_name})` : "";
    $("send-summary").textContent = `Send ${formatEther(checked.amount_wei, 18)} ETH to ${checked.to}${who}? `
      + `You have ${formatEther(checked.balance_wei)} ETH. This cannot be undone.`;
    $("send-confirm").hidden = false;
    $("send-yes").focus();
  });
  $("send-no").addEventListener("click", () => { closeConfirm(); $("send-to").focus(); });
  $("send-yes").addEventListener("click", async () => {
    if (!checked) return;
    const { to } = checked;
    const amount = formatEther(checked.amount_wei, 18);
    closeConfirm();
    if (await act(api("POST", "/api/send", { to, amount_eth: amount }), "Ether sent")) {
      $("send-amount").value = "";
    }
  });
  await loadMe();
  render(await api("GET", "/api/wallet"));
});
