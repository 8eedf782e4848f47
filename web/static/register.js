/* The register view: a key made in this page, encrypted here, the keystore uploaded (SIWE-signed). */
import { api } from "./api.js";
import * as keys from "./keys.js";
import * as signer from "./signer.js";
import { $, offerDownload } from "./util.js";

function progress(percent) {
  const bar = $("reg-progress");
  bar.hidden = false;
  bar.setAttribute("aria-valuenow", String(percent));
  bar.firstElementChild.style.width = `${percent}%`;
}

function checked() {
  const name = $("reg-name").value.trim();
  const passphrase = $("reg-passphrase").value;
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) throw new Error("a name is 1–32 letters, digits, - or _");
  if (passphrase.length < 8) throw new Error("a passphrase has at least 8 characters");
  if (passphrase !== $("reg-passphrase2").value) throw new Error("the two passphrases differ");
  return { name, passphrase };
}

async function registerHere() {
  const { name, passphrase } = checked();
  progress(0);
  const address = await keys.create(passphrase, Number(document.body.dataset.scryptN), progress);
  $("reg-passphrase").value = "";
  $("reg-passphrase2").value = "";
  const keystore = keys.keystoreJson();
  try {
    const { message } = await api("POST", "/api/login/message", { address });
    signer.checkLogin(message, address);
    const signature = await keys.signMessage(message);
    const made = await api("POST", "/api/register", { name, keystore: JSON.parse(keystore),
      serve_keystore: $("reg-serve").checked, message, signature });
    $("reg-address").textContent = made.address;
    $("reg-who").textContent = made.name;
    // The file is the account: offered before anything else can go wrong.
    offerDownload($("reg-download"), keystore, `UTC--${new Date().toISOString().replace(/:/g, "-")}--${address.slice(2).toLowerCase()}.json`);
    $("register-form").hidden = true;
    $("reg-done").hidden = false;
    $("reg-done").focus();
  } finally {
    keys.drop();  // not logged in until the admin approves: nothing to keep the key for
  }
}

export default {
  init() {
    $("register-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      $("reg-error").textContent = "";
      $("reg-button").disabled = true;
      try { await registerHere(); } catch (err) { $("reg-error").textContent = err.message; $("reg-progress").hidden = true; }
      finally { $("reg-button").disabled = false; }
    });
  },
};
