/* Shared helpers of the gridbid pages: the JSON API, units, toasts, the logged-in header. */
"use strict";

const WEI_PER_ETH = 10n ** 18n;

/* The page's CSRF token: every state-changing request echoes it in a header. */
function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function api(method, url, body) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  if (!response.ok) {
    if (response.status === 401 && !url.endsWith("/api/login")) { location.href = "/login"; }
    const err = new Error(data.error || `request failed (${response.status})`);
    err.kind = data.kind;
    throw err;
  }
  return data;
}

/* Wei (decimal string) to a readable ETH amount with up to `places` decimals. */
function formatEther(wei, places = 6) {
  if (wei === null || wei === undefined) return "–";
  const value = BigInt(wei);
  const whole = value / WEI_PER_ETH;
  const frac = (value % WEI_PER_ETH).toString().padStart(18, "0").slice(0, places).replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

/* A decimal ETH amount typed by a person to wei as a decimal string (exact, no floats). */
function parseEther(text) {
  const clean = String(text).trim();
  if (!/^\d+(\.\d{1,18})?$/.test(clean)) throw new Error(`"${text}" is not an amount of ETH`);
  const [whole, frac = ""] = clean.split(".");
  return (BigInt(whole) * WEI_PER_ETH + BigInt(frac.padEnd(18, "0"))).toString();
}

function formatKwh(wh) { return (wh / 1000).toFixed(3); }
function short(address) { return address ? `${address.slice(0, 6)}…${address.slice(-4)}` : ""; }
function $(id) { return document.getElementById(id); }

let toastTimer;
function toast(message, isError = false) {
  const box = $("toast");
  box.textContent = message;
  box.className = isError ? "show error" : "show";
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.className = ""; }, 5000);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

window.gridbid = { me: null };

async function loadMe() {
  if (!document.body.dataset.me) return null;
  const me = await api("GET", "/api/me");
  window.gridbid.me = me;
  $("who").textContent = `${me.name || short(me.address)} (${me.role || (me.admin ? "admin" : "")})`;
  return me;
}

document.addEventListener("DOMContentLoaded", () => {
  const logout = $("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await api("POST", "/api/logout");
      location.href = "/login";
    });
  }
});
