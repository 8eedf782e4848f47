/* The page's router and session: one document for the whole visit, one view shown at a time.

The unlocked key lives in keys.js for as long as this document does, so moving between views
must never load another page: links are intercepted and history.pushState keeps the URL.
*/
import { clearAnnouncements } from "./announce.js";
import { api, onLoggedOut, setCsrf } from "./api.js";
import * as keys from "./keys.js";
import { LiveChannel } from "./lazy.js";
import * as signer from "./signer.js";
import { $, short, toast } from "./util.js";
import admin from "./admin.js";
import chain from "./chain.js";
import grid from "./grid.js";
import login from "./login.js";
import market from "./market.js";
import register from "./register.js";
import wallet from "./wallet.js";

const VIEWS = { login, register, wallet, market, grid, admin, chain };
const PUBLIC = new Set(["login", "register", "chain"]);
const PATHS = { wallet: "/wallet", market: "/market", grid: "/grid", admin: "/admin", chain: "/chain",
  login: "/login", register: "/register" };

// Views with live data: the first one shown loads the Socket.IO client and opens the session's
// market and wallet channels; the Grid view opens its own channel once its charts exist.
const LIVE = new Set(["wallet", "market", "grid"]);

const session = { me: null, sockets: null, wanted: null, shown: null };
const ctx = { session, navigate, loggedIn, logout };

function viewOfPath(path) {
  const name = path.replace(/^\/+|\/+$/g, "") || "wallet";
  return VIEWS[name] ? name : "wallet";
}

function defaultView() { return session.me && session.me.admin && !session.me.role ? "admin" : "wallet"; }

/* Show one view (or the login view first when it needs a key); focus its heading. */
export function navigate(name, { push = true, focus = true } = {}) {
  if (!session.me && !PUBLIC.has(name)) { session.wanted = name; name = "login"; }
  else if (session.me && (name === "login" || name === "register")) name = defaultView();
  if (name === "admin" && session.me && !session.me.admin) name = "wallet";
  const path = PATHS[name];
  if (push && location.pathname !== path) history.pushState({ view: name }, "", path);
  else if (location.pathname !== path) history.replaceState({ view: name }, "", path);
  for (const [other, view] of Object.entries(VIEWS)) {
    const section = $(`view-${other}`);
    if (other === name) continue;
    if (!section.hidden && view.hide) view.hide();
    section.hidden = true;
  }
  $(`view-${name}`).hidden = false;
  session.shown = name;
  document.body.dataset.view = name;
  document.title = `${$(`view-${name}`).querySelector("h1").firstChild.textContent.trim()} · gridbid`;
  for (const link of document.querySelectorAll("nav a[data-route]")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (VIEWS[name].show) VIEWS[name].show(ctx);
  if (LIVE.has(name) && session.sockets) {
    for (const ns of ["market", "wallet"]) session.sockets[ns].open().catch((err) => toast(err.message, true));
  }
  if (focus) $(`view-${name}`).querySelector("h1").focus();
}

/* The portal opened a session for the signer just unlocked: live channels, views, header. */
async function loggedIn(me) {
  setCsrf(me.csrf);
  session.me = me;
  document.body.classList.replace("logged-out", "logged-in");
  document.body.classList.toggle("is-admin", Boolean(me.admin));
  $("who").textContent = `${me.name || short(me.address)} (${me.role || (me.admin ? "admin" : "pending")})`;
  $("signer-kind").textContent = signer.current() === "injected" ? "browser wallet" : "key in this page";
  if (signer.current() === "keystore") keys.armIdle(Number(document.body.dataset.idleTimeoutS), idleOut);
  // Channels connect when a view that uses them is first shown (lazy.js), not here.
  session.sockets = Object.fromEntries(["market", "wallet", "grid"].map((ns) => [ns, new LiveChannel(ns)]));
  for (const view of Object.values(VIEWS)) if (view.start) view.start(ctx);
  const next = session.wanted && session.wanted !== "login" ? session.wanted : defaultView();
  session.wanted = null;
  navigate(next);
}

/* Forget the key, close the channels, clear every view; the portal ends the session too. */
async function logout(notice) {
  const wasIn = session.me !== null;
  signer.forget();
  if (session.sockets) for (const socket of Object.values(session.sockets)) socket.disconnect();
  session.sockets = null;
  session.me = null;
  for (const view of Object.values(VIEWS)) if (view.stop) view.stop(ctx);
  clearAnnouncements();  // the next person at this screen must not read the last one's news
  document.body.classList.replace("logged-in", "logged-out");
  document.body.classList.remove("is-admin");
  if (wasIn) {
    try { setCsrf((await api("POST", "/api/logout")).csrf); } catch (e) { /* already gone */ }
  }
  login.notice(notice || "");
  navigate("login");
}

function idleOut() {
  const minutes = Math.round(Number(document.body.dataset.idleTimeoutS) / 60);
  logout(`Logged out after ${minutes} min without activity: your key was forgotten.`);
}

function interceptLinks(event) {
  const link = event.target.closest("a[data-route]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.dataset.route);
}

document.addEventListener("DOMContentLoaded", () => {
  document.addEventListener("click", interceptLinks);
  for (const type of ["pointerdown", "keydown", "wheel", "touchstart"]) {
    document.addEventListener(type, () => keys.touch(), { passive: true, capture: true });
  }
  window.addEventListener("popstate", () => navigate(viewOfPath(location.pathname), { push: false }));
  $("logout").addEventListener("click", () => logout("Logged out: your key was forgotten."));
  onLoggedOut(() => { if (session.me) logout("The portal ended this session: log in again."); });
  for (const view of Object.values(VIEWS)) if (view.init) view.init(ctx);
  // A fresh document has no key, whatever the session cookie says: the login view comes first.
  navigate(viewOfPath(location.pathname), { push: false, focus: false });
});

// For tests and the console: the API helper, never the key (keys.js keeps that to itself).
window.gridbid = { api, navigate, session };
