/* The admin page: network health every 2 s, accounts with their meters, enrollment. */
"use strict";

async function refreshHealth() {
  try {
    const h = await api("GET", "/api/admin/health");
    $("health-state").textContent = h.node.ok ? "node answering" : "node down";
    $("health-state").className = h.node.ok ? "badge ok" : "badge bad";
    $("node-uri").textContent = h.node.uri;
    $("node-block").textContent = h.node.ok ? h.node.block : h.node.error;
    $("node-latency").textContent = h.node.latency_ms;
    $("node-mining").textContent = !h.mining ? "–" : h.mining.on === null ? "not controllable"
      : `${h.mining.on ? "running" : "stopped"}${h.mining.block_period ? `, a block every ${h.mining.block_period} s` : ""}`;
    if (h.mining) renderControls(h.mining);
    $("node-pending").textContent = `${h.app_pending} from this portal, ${h.mining ? h.mining.pending : "–"} in flight`;
    $("open-listings").textContent = h.open_listings;
    $("active-deals").textContent = h.active_deals;
    $("boards").querySelector("tbody").replaceChildren(...h.boards.map((b) => el("tr", { "data-board": b.board_id },
      el("td", { textContent: b.board_id }), el("td", { textContent: `${b.owner} (${b.role})` }),
      el("td", { class: b.online ? "ok" : "bad", textContent: b.online ? "online" : "offline" }),
      el("td", { class: "relays", textContent: b.relays.map((r) => (r ? "on" : "off")).join(" ") || "–" }),
      el("td", { textContent: b.budgets.map((x) => (x === null ? "none" : x)).join(" ") || "–" }),
      el("td", { textContent: b.power_w === null ? "–" : b.power_w }))));
  } catch (err) { $("health-state").textContent = err.message; }
}

// Block production is the operator's on a one-node chain: its controls live here only.
function renderControls(m) {
  const button = $("mining-toggle");
  button.textContent = m.on ? "Stop mining" : "Start mining";
  button.dataset.on = m.on ? "1" : "0";
  button.disabled = !m.can_toggle;
  $("mine-one").hidden = !m.can_mine;
  $("period-form").hidden = !m.can_set_period;
}

async function control(body, done) {
  try { renderControls(await api("POST", "/api/admin/mining" + (body ? "" : "/mine"), body || undefined)); toast(done); refreshHealth(); }
  catch (err) { toast(err.message, true); }
}

async function refreshAccounts() {
  const { accounts } = await api("GET", "/api/admin/accounts");
  $("accounts").querySelector("tbody").replaceChildren(...accounts.map((a) => {
    const row = el("tr", { "data-name": a.name },
      el("td", { textContent: a.name }), el("td", { textContent: a.role }),
      el("td", { class: "mono", textContent: short(a.address), title: a.address }),
      el("td", { textContent: formatEther(a.eth_wei, 4) }),
      el("td", { textContent: formatKwh(a.tokens_wh) }),
      el("td", { textContent: a.board_id || "none" }),
      el("td", { class: "mono", textContent: a.meter ? short(a.meter) : "–", title: a.meter || "" }),
      el("td", { class: "enrolled", textContent: a.meter_enrolled ? `${a.meter_kind}, ${a.meter_rated_power_w} W` : "no" }));
    const cell = el("td");
    if (a.meter && a.meter_enrolled) {
      const button = el("button", { type: "button", class: "secondary", textContent: "Disenroll" });
      button.addEventListener("click", async () => {
        button.disabled = true;
        try { await api("POST", `/api/admin/meters/${a.meter}/disenroll`); toast(`Meter of ${a.name} disenrolled`); }
        catch (err) { toast(err.message, true); }
        refreshAccounts();
      });
      cell.append(button);
    }
    row.append(cell);
    return row;
  }));
}

document.addEventListener("DOMContentLoaded", async () => {
  $("mining-toggle").addEventListener("click", () => {
    const on = $("mining-toggle").dataset.on !== "1";
    control({ on }, on ? "Mining started" : "Mining stopped");
  });
  $("mine-one").addEventListener("click", () => control(null, "Mined a block"));
  $("period-form").addEventListener("submit", (event) => {
    event.preventDefault();
    control({ period: $("period").value }, "Block period set");
  });
  $("account-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("account-error").textContent = "";
    try {
      const made = await api("POST", "/api/admin/accounts", { name: $("new-name").value.trim(),
        role: $("new-role").value, passphrase: $("new-passphrase").value });
      toast(`Account ${made.name} created: ${made.address}`);
      $("new-name").value = ""; $("new-passphrase").value = "";
      refreshAccounts();
    } catch (err) { $("account-error").textContent = err.message; }
  });
  $("meter-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("meter-error").textContent = "";
    try {
      await api("POST", "/api/admin/meters", { meter: $("meter-address").value.trim(),
        owner: $("meter-owner").value.trim(), role: $("meter-role").value,
        rated_power_w: Number($("meter-rated").value) });
      toast("Meter enrolled");
      refreshAccounts();
    } catch (err) { $("meter-error").textContent = err.message; }
  });
  await loadMe();
  refreshHealth();
  setInterval(refreshHealth, 2000);
  refreshAccounts().catch((err) => toast(err.message, true));
});
