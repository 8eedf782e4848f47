/* The login view: unlock a keystore in the page (or use a browser wallet), then sign in (SIWE). */
import { ethers } from "ethers";
import { api } from "./api.js";
import { isBusy, setBusy } from "./focus.js";
import * as injected from "./injected.js";
import * as keys from "./keys.js";
import * as signer from "./signer.js";
import { $, el, short } from "./util.js";

let accounts = [];    // GET /api/accounts: name, address, role, keystore (served or not)
let dropped = null;   // a keystore file the person chose or dropped: {json, address}

function progress(bar, percent) {
  bar.hidden = false;
  bar.setAttribute("aria-valuenow", String(percent));
  bar.firstElementChild.style.width = `${percent}%`;
}

/* The typed or picked account as an address (names are looked up in the portal's list). */
function chosenAddress() {
  const typed = $("account").value.trim();
  if (!typed && dropped) return dropped.address;
  const byName = accounts.find((a) => a.name === typed) || accounts.find((a) => a.name.toLowerCase() === typed.toLowerCase());
  if (byName) return byName.address;
  if (!typed) throw new Error("pick an account or choose your keystore file");
  try { return ethers.getAddress(typed); } catch (e) { /* below */ }
  // A name, mistyped, is answered about names (an address is only what starts with 0x).
  if (/^0x/i.test(typed)) throw new Error(`${typed} is not an address: 0x and 40 hex digits`);
  const names = accounts.map((a) => a.name).join(", ");
  throw new Error(`no participant is named “${typed}”: pick one of ${names || "the accounts listed"}, or type an address (0x…)`);
}

async function keystoreFor(address) {
  if (dropped && dropped.address === address) return dropped.json;
  const known = accounts.find((a) => a.address === address);
  if (!known || !known.keystore) {
    throw new Error("the portal does not keep this account's keystore: choose your keystore file");
  }
  return JSON.stringify(await api("GET", `/api/accounts/${address}/keystore`));
}

async function chainFacts() { return api("GET", "/api/chain"); }

async function unlockAndSignIn(ctx) {
  const address = chosenAddress();
  const json = await keystoreFor(address);
  const bar = $("unlock-progress");
  progress(bar, 0);
  const unlocked = await keys.unlock(json, $("passphrase").value, (p) => progress(bar, p));
  $("passphrase").value = "";  // the page keeps the key, not the passphrase
  if (unlocked !== address) { keys.drop(); throw new Error(`that keystore is ${unlocked}'s, not ${address}'s`); }
  signer.use("keystore", await chainFacts());
  const me = await signer.signIn(unlocked, keys.signMessage);
  notice("");
  await ctx.loggedIn(me);
}

async function walletSignIn(ctx) {
  const who = await injected.connect();
  const facts = await chainFacts();
  signer.use("injected", facts);
  await injected.useChain(facts);
  const me = await signer.signIn(who, injected.signMessage);
  notice("");
  await ctx.loggedIn(me);
}

async function readKeystoreFile(file) {
  const text = await file.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch (e) { throw new Error(`${file.name} is not a keystore file (not JSON)`); }
  if (!parsed.address || !(parsed.crypto || parsed.Crypto)) throw new Error(`${file.name} is not a geth keystore file`);
  const address = ethers.getAddress(`0x${String(parsed.address).replace(/^0x/, "")}`);
  dropped = { json: text, address };
  $("account").value = address;
  $("keystore-name").textContent = `${file.name}: ${short(address)}`;
  $("passphrase").focus();
}

async function loadAccounts() {
  try {
    ({ accounts } = await api("GET", "/api/accounts"));
    const pick = $("account-pick");
    pick.replaceChildren(pick.firstElementChild, ...accounts.map((a) => el("option", { value: a.address,
      textContent: `${a.name} (${a.role})${a.keystore ? "" : " — your file"} ${short(a.address)}` })));
  } catch (err) { $("login-error").textContent = err.message; }
}

/* The account picker (a native select: the APG's select-only combobox). Arrow keys move
   through the accounts and each fills the address field, focus staying on the picker; Enter
   or Tab moves on to the passphrase. Only a pick made with the pointer jumps there at once. */
function pickAccounts() {
  const pick = $("account-pick");
  let pointer = false;  // the change comes from the pointer's pick, not an arrow key
  pick.addEventListener("pointerdown", () => { pointer = true; });
  pick.addEventListener("keydown", (event) => {
    pointer = false;
    if (event.key === "Enter" && pick.value) { event.preventDefault(); $("passphrase").focus(); }
  });
  pick.addEventListener("change", () => {
    $("account").value = pick.value;
    if (pointer) $("passphrase").focus();
    pointer = false;
  });
}

function notice(text) { $("login-notice").textContent = text; $("login-notice").hidden = !text; }

function fail(err) {
  $("login-error").textContent = err.message;
  $("unlock-progress").hidden = true;
  if (err instanceof keys.WrongPassphrase) $("passphrase").select();
  signer.forget();
}

export default {
  init(ctx) {
    $("idle-minutes").textContent = Math.round(Number(document.body.dataset.idleTimeoutS) / 60);
    pickAccounts();
    $("keystore-file").addEventListener("change", () => {
      const [file] = $("keystore-file").files;
      if (file) readKeystoreFile(file).catch(fail);
    });
    const zone = $("keystore-drop");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const [file] = e.dataTransfer.files;
      if (file) readKeystoreFile(file).catch(fail);
    });
    $("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $("login-button");
      if (isBusy(button)) return;
      $("login-error").textContent = "";
      setBusy(button, true, "Unlocking…");  // not disabled: a failure must leave focus on it
      try { await unlockAndSignIn(ctx); } catch (err) { fail(err); } finally { setBusy(button, false); }
    });
    $("wallet-login").addEventListener("click", async () => {
      $("login-error").textContent = "";
      try { await walletSignIn(ctx); } catch (err) { fail(err); }
    });
  },
  show() {
    $("injected-login").hidden = !injected.available();
    $("unlock-progress").hidden = true;
    loadAccounts();
  },
  notice,
};
