/* Helpers every view shares: elements, units (exact, BigInt), toasts (from announce.js). */

const WEI_PER_ETH = 10n ** 18n;

export function $(id) { return document.getElementById(id); }

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

/* Wei (decimal string or BigInt) to a readable ETH amount with up to `places` decimals. */
export function formatEther(wei, places = 6) {
  if (wei === null || wei === undefined) return "–";
  const value = BigInt(wei);
  const whole = value / WEI_PER_ETH;
  const frac = (value % WEI_PER_ETH).toString().padStart(18, "0").slice(0, places).replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

/* A decimal ETH amount typed by a person to wei as a decimal string (exact, no floats). */
export function parseEther(text) {
  const clean = String(text).trim();
  if (!/^\d+(\.\d{1,18})?$/.test(clean)) throw new Error(`"${text}" is not an amount of ETH`);
  const [whole, frac = ""] = clean.split(".");
  return (BigInt(whole) * WEI_PER_ETH + BigInt(frac.padEnd(18, "0"))).toString();
}

export function formatKwh(wh) { return (wh / 1000).toFixed(3); }

/* The one unit system a person sees (marketplace/units.py says the same in refusals): Ether as
   ETH with up to 6 significant digits, a non-zero amount never shown as 0; energy in Wh, with
   kWh beside it from 1 kWh on; prices in ETH per kWh, a lot's total cost beside them. */
export function formatEth(wei) {
  if (wei === null || wei === undefined) return "–";
  const value = BigInt(wei);
  if (value === 0n) return "0";
  const whole = value / WEI_PER_ETH;
  const digits = whole > 0n ? whole.toString().length : 0;
  const places = digits ? Math.max(0, 6 - digits) : Math.min(18, 6 + 18 - value.toString().length);
  const frac = (value % WEI_PER_ETH).toString().padStart(18, "0").slice(0, places).replace(/0+$/, "");
  const grouped = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac ? `${grouped}.${frac}` : grouped;
}

export function formatEnergy(wh) {
  if (wh === null || wh === undefined || Number.isNaN(Number(wh))) return "–";
  const n = Math.round(Number(wh));
  const text = `${n.toLocaleString("en")} Wh`;
  return Math.abs(n) < 1000 ? text : `${text} (${Number((n / 1000).toFixed(3)).toLocaleString("en")} kWh)`;
}

/* What energy_wh costs at a price per kWh (wei), rounded down as the escrow does. */
export function costWei(priceWei, wh) { return (BigInt(priceWei) * BigInt(wh)) / 1000n; }

/* "0.01 ETH/kWh (0.0003 ETH for 30 Wh)": a price with the lot's total cost beside it. */
export function priceWithCost(priceWei, wh) {
  return `${formatEth(priceWei)} ETH/kWh (${formatEth(costWei(priceWei, wh))} ETH for ${formatEnergy(wh)})`;
}
export function short(address) { return address ? `${address.slice(0, 6)}…${address.slice(-4)}` : ""; }

/* A duration in seconds as a person reads it ("2 h 5 min", "40 s"). */
export function duration(seconds) {
  if (seconds > 0 && seconds < 10 && !Number.isInteger(seconds)) return `${seconds.toFixed(1)} s`;
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.round((s % 3600) / 60);
  return h ? `${h} h${m ? ` ${m} min` : ""}` : `${m} min`;
}

// Toasts are the announcer's (announce.js): said in the live region, kept in the status bar.
export { toast } from "./announce.js";

/* A transaction as a list item: its status, label and full hash (every hash is shown). */
export function txItem(tx) {
  const status = el("span", { class: `status ${tx.status}`, textContent: tx.status });
  return el("li", { "data-hash": tx.tx_hash }, status, " ", tx.label || "", " ",
    el("code", { class: "hash", textContent: tx.tx_hash }),
    tx.error ? el("span", { class: "error", textContent: ` — ${tx.error}` }) : "");
}

/* A file (Blob URL) the person can save, e.g. their keystore. */
export function offerDownload(anchor, text, filename) {
  if (anchor.href && anchor.href.startsWith("blob:")) URL.revokeObjectURL(anchor.href);
  anchor.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  anchor.download = filename;
}

/* When an interval of the interval market starts, as a person reads it: the emulator's time of
   day ("14:15") when it runs faster than real time (its day count means nothing to anyone),
   else the wall clock's. */
export function intervalTime(seconds, timeFactor) {
  if (Number(timeFactor) <= 1) {
    return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  const s = ((seconds % 86400) + 86400) % 86400;
  const pad = (v) => String(Math.floor(v)).padStart(2, "0");
  return `${pad(s / 3600)}:${pad((s % 3600) / 60)}`;
}
