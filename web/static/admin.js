/* The admin view: network health every 2 s while shown, block production, registrations to
   approve (role and board), bridges and their boards, accounts with their meters, enrollment. */
import { api } from "./api.js";
import { $, el, formatEnergy, formatEth, short, toast } from "./util.js";

let poll = null;

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
    $("node-pending").textContent = `${h.app_pending} from this portal, ${h.mining ? h.mining.pending : "–"} in flight`;
    $("open-listings").textContent = h.open_listings;
    $("active-deals").textContent = h.active_deals;
    $("boards").querySelector("tbody").replaceChildren(...h.boards.map((b) => el("tr", { "data-board": b.board_id },
      el("td", { textContent: b.board_id }), el("td", { textContent: `${b.owner} (${b.role})` }),
      el("td", { class: b.online ? "ok" : "bad", textContent: b.online ? "online" : "offline" }),
      el("td", { class: "relays", textContent: b.relays.map((r) => (r ? "on" : "off")).join(" ") || "–" }),
      el("td", { textContent: b.budgets.map((x) => (x === null ? "none" : x)).join(" ") || "–" }),
      el("td", { textContent: b.power_w === null ? "–" : b.power_w }))));
    if (h.mining) renderMining(h.mining);
    refreshBus().catch(() => {});  // the health badge already says when the portal is away
  } catch (err) { $("health-state").textContent = err.message; }
}

async function refreshBus() {
  const { disagreements } = await api("GET", "/api/admin/bus");
  $("bus-disagreements").querySelector("tbody").replaceChildren(...disagreements.map((d) => el("tr", { "data-id": d.id },
    el("td", { textContent: new Date(d.at * 1000).toLocaleString() }),
    el("td", { textContent: d.sellers_out_wh }), el("td", { textContent: d.buyers_in_wh }),
    el("td", { textContent: d.boards.join(", ") }), el("td", { textContent: d.deals.join(", ") }))));
  $("no-bus-disagreements").hidden = disagreements.length > 0;
}

function renderMining(m) {
  $("admin-mining-state").textContent = m.on === null || m.on === undefined ? "not controllable" : m.on ? "running" : "stopped";
  $("admin-block").textContent = m.block ?? "–";
  $("admin-block-period").textContent = m.block_period === null || m.block_period === undefined ? "n/a"
    : m.block_period === 0 ? "a block per transaction" : `${m.block_period} s`;
  $("admin-mining-why").textContent = m.why || "";
  const button = $("mining-toggle");
  button.textContent = m.on ? "Stop mining" : "Start mining";
  button.dataset.on = m.on ? "1" : "0";
  button.disabled = m.can_toggle === false;
  $("mine-one").hidden = m.can_mine === false;
  $("period-form").hidden = m.can_set_period === false;
}

async function mining(url, body, done) {
  $("mining-error").textContent = "";
  try { renderMining(await api("POST", url, body)); toast(done); }
  catch (err) { $("mining-error").textContent = err.message; }
}

function accountRow(a) {
  const row = el("tr", { "data-name": a.name },
    el("td", { textContent: a.name }), el("td", { textContent: a.role }),
    el("td", { class: "mono", textContent: short(a.address), title: a.address }),
    el("td", { textContent: formatEth(a.eth_wei) }),
    el("td", { textContent: formatEnergy(a.tokens_wh) }),
    el("td", { textContent: a.board_id || "none" }),
    el("td", { class: "mono", textContent: a.meter ? short(a.meter) : "–", title: a.meter || "" }),
    el("td", { class: "enrolled", textContent: a.meter_enrolled ? `${a.meter_kind}, ${a.meter_rated_power_w} W` : "no" }));
  const cell = el("td");
  if (a.meter && a.meter_enrolled) cell.append(disenrollControl(a));
  row.append(cell);
  return row;
}

/* Disenroll, named for whose meter and board it acts on, asks before it acts: the meter stops
   minting and its owner's deals end, and only a new consent enrolls it again. */
function disenrollControl(a) {
  const what = `${a.name}'s meter${a.board_id ? ` (board ${a.board_id})` : ""}`;
  const ask = el("button", { type: "button", class: "secondary disenroll", textContent: `Disenroll ${what}` });
  const question = el("p", { id: `disenroll-${a.name}-q`, textContent: `Disenroll ${what}? It mints no more tokens and `
    + "cannot trade until its owner consents to a new enrollment." });
  const yes = el("button", { type: "button", class: "danger disenroll-yes", textContent: `Yes, disenroll ${what}` });
  const no = el("button", { type: "button", class: "secondary disenroll-no", textContent: "Keep it enrolled" });
  const confirm = el("div", { class: "confirm", role: "group", "aria-labelledby": question.id, hidden: true },
    question, el("div", { class: "row" }, yes, no));
  ask.addEventListener("click", () => { ask.hidden = true; confirm.hidden = false; yes.focus(); });
  no.addEventListener("click", () => { confirm.hidden = true; ask.hidden = false; ask.focus(); });
  yes.addEventListener("click", async () => {
    yes.disabled = no.disabled = true;
    try { await api("POST", `/api/admin/meters/${a.meter}/disenroll`); toast(`${what} disenrolled`); }
    catch (err) { toast(err.message, true); }
    refreshAccounts();
  });
  return el("div", {}, ask, confirm);
}

async function refreshAccounts() {
  const { accounts } = await api("GET", "/api/admin/accounts");
  $("accounts").querySelector("tbody").replaceChildren(...accounts.map(accountRow));
}

function registrationRow(r) {
  const role = el("select", { ariaLabel: `Role for ${r.name}` },
    el("option", { value: "consumer", textContent: "consumer" }), el("option", { value: "producer", textContent: "producer" }));
  const board = el("input", { ariaLabel: `Board of ${r.name} (optional)`, placeholder: "board id", className: "board-id" });
  const approve = el("button", { type: "button", class: "approve", textContent: "Approve", ariaLabel: `Approve ${r.name}` });
  const reject = el("button", { type: "button", class: "secondary reject", textContent: "Reject", ariaLabel: `Reject ${r.name}` });
  const decide = async (what, body) => {
    approve.disabled = reject.disabled = true;
    try { await api("POST", `/api/admin/registrations/${r.address}/${what}`, body); toast(`${r.name}: ${what === "approve" ? "approved" : "rejected"}`); }
    catch (err) { toast(err.message, true); }
    refreshRegistrations();
    refreshAccounts();
  };
  approve.addEventListener("click", () => decide("approve", board.value.trim()
    ? { role: role.value, board_id: board.value.trim() } : { role: role.value }));
  reject.addEventListener("click", () => decide("reject", {}));
  const asked = r.created;
  return el("tr", { "data-address": r.address, "data-name": r.name },
    el("td", { textContent: r.name }), el("td", { class: "mono", textContent: r.address }),
    el("td", { textContent: asked ? new Date(asked * 1000).toLocaleString() : "–" }),
    el("td", {}, role), el("td", {}, board), el("td", {}, approve, " ", reject));
}

async function refreshRegistrations() {
  try {
    const { registrations } = await api("GET", "/api/admin/registrations");
    const waiting = registrations.filter((r) => !r.status || r.status === "pending");
    $("registrations").querySelector("tbody").replaceChildren(...waiting.map(registrationRow));
    $("no-registrations").hidden = waiting.length > 0;
  } catch (err) { toast(err.message, true); }
}

function bridgeRow(b) {
  const revoke = el("button", { type: "button", class: "secondary revoke", textContent: "Revoke", ariaLabel: `Revoke bridge ${b.id}` });
  revoke.addEventListener("click", async () => {
    revoke.disabled = true;
    try { await api("DELETE", `/api/admin/bridges/${encodeURIComponent(b.id)}`); toast(`Bridge ${b.id} revoked`); }
    catch (err) { toast(err.message, true); }
    refreshBridges();
  });
  const boards = b.boards.map((x) => `${x.board_id} (${short(x.meter)}${x.time_factor !== 1 ? `, ×${x.time_factor}` : ""})`
    + (x.online ? " online" : "")).join(", ");
  return el("tr", { "data-bridge": b.id }, el("td", { textContent: b.id }),
    el("td", { class: b.online ? "ok" : "bad", textContent: b.online ? "online" : "offline" }),
    el("td", { class: "mono", textContent: boards }), el("td", {}, revoke));
}

async function refreshBridges() {
  try {
    const { bridges } = await api("GET", "/api/admin/bridges");
    $("bridges").querySelector("tbody").replaceChildren(...bridges.map(bridgeRow));
    $("no-bridges").hidden = bridges.length > 0;
  } catch (err) { toast(err.message, true); }
}

async function registerBridge() {
  $("bridge-error").textContent = "";
  $("bridge-token-box").hidden = true;
  const time_factor = Number($("bridge-time-factor").value);
  const boards = $("bridge-boards").value.split("\n").map((line) => line.trim()).filter(Boolean)
    .map((line) => { const [board_id, meter] = line.split(/\s+/); return { board_id, meter, time_factor }; });
  try {
    const made = await api("POST", "/api/admin/bridges", { id: $("bridge-id").value.trim(), boards });
    $("bridge-token-id").textContent = made.id;
    $("bridge-token").textContent = made.token;
    $("bridge-token-box").hidden = false;
    $("bridge-boards").value = "";
    $("bridge-time-factor").value = "1";
    refreshBridges();
  } catch (err) { $("bridge-error").textContent = err.message; }
}

export default {
  init() {
    $("meter-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      $("meter-error").textContent = "";
      try {
        await api("POST", "/api/admin/meters", { meter: $("meter-address").value.trim(),
          owner: $("meter-owner").value.trim(), role: $("meter-role").value,
          rated_power_w: Number($("meter-rated").value) });
        toast("The owner is asked to consent to the meter");
        refreshAccounts();
      } catch (err) { $("meter-error").textContent = err.message; }
    });
    $("bridge-form").addEventListener("submit", (event) => { event.preventDefault(); registerBridge(); });
    $("mining-toggle").addEventListener("click", () => {
      const on = $("mining-toggle").dataset.on !== "1";
      mining("/api/admin/mining", { on }, on ? "Mining started" : "Mining stopped");
    });
    $("mine-one").addEventListener("click", () => mining("/api/admin/mining/mine", {}, "Mined a block"));
    $("period-form").addEventListener("submit", (event) => {
      event.preventDefault();
      mining("/api/admin/mining", { period: Number($("period").value) }, "Block period set");
    });
  },
  show() {
    refreshHealth();
    clearInterval(poll);
    poll = setInterval(refreshHealth, 2000);
    refreshAccounts().catch((err) => toast(err.message, true));
    refreshRegistrations();
    refreshBridges();
  },
  hide() { clearInterval(poll); poll = null; },
  stop() {
    $("bus-disagreements").querySelector("tbody").replaceChildren();
    clearInterval(poll);
    poll = null;
    for (const id of ["boards", "accounts", "registrations", "bridges"]) $(id).querySelector("tbody").replaceChildren();
    $("bridge-token-box").hidden = true;
    $("bridge-token").textContent = "";
  },
};
