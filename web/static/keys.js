/* The in-page signer: a geth keystore unlocked here, its key in this module's variable alone.

Nothing outside this module can read the key: the page asks it to sign and gets signatures
back. The key is forgotten on logout, after the idle timeout, and by any reload (it was never
written anywhere), so the portal never holds it and the passphrase never leaves the page.
*/
import { ethers } from "ethers";

let wallet = null;     // the unlocked key (an ethers Wallet)
let keystore = null;   // the encrypted JSON it came from, offered for download
let idle = { timer: null, ms: 0, expired: () => {} };

/* The geth format's passphrase check failed: ethers says "incorrect password". */
export class WrongPassphrase extends Error {}

function progressOf(report) {
  return (fraction) => report(Math.min(100, Math.round(fraction * 100)));
}

/* Decrypt a keystore JSON with its passphrase (scrypt, progress 0–100); its address. */
export async function unlock(json, passphrase, report = () => {}) {
  let unlocked;
  try {
    unlocked = await ethers.Wallet.fromEncryptedJson(json, passphrase, progressOf(report));
  } catch (err) {
    if (/incorrect password/i.test(err.message)) throw new WrongPassphrase("wrong passphrase for this account");
    throw new Error(`that is not a keystore this page can open (${err.shortMessage || err.message})`);
  }
  drop();
  wallet = unlocked;
  keystore = typeof json === "string" ? json : JSON.stringify(json);
  report(100);
  return wallet.address;
}

/* A new key made here, encrypted at scrypt cost n (geth's format); its address. */
export async function create(passphrase, n, report = () => {}) {
  const made = ethers.Wallet.createRandom();
  // Only address and key go in (no mnemonic): the keystore geth and the portal read.
  const json = await ethers.encryptKeystoreJson(
    { address: made.address, privateKey: made.privateKey }, passphrase,
    { scrypt: { N: n }, progressCallback: progressOf(report) });
  drop();
  wallet = new ethers.Wallet(made.privateKey);
  keystore = json;
  return wallet.address;
}

function need() {
  if (!wallet) throw new Error("your key is not unlocked in this page: log in again");
  touch();
  return wallet;
}

export function address() { return wallet ? wallet.address : null; }
export function unlocked() { return wallet !== null; }
export function keystoreJson() { return keystore; }

/* EIP-191 personal_sign of a text (the Sign-In with Ethereum message). */
export async function signMessage(text) { return need().signMessage(text); }

/* EIP-712 signature of typed data as the portal's terms give it (no EIP712Domain in types). */
export async function signTypedData(domain, types, message) {
  const plain = { ...types };
  delete plain.EIP712Domain;
  return need().signTypedData(domain, plain, message);
}

/* A prepared transaction (decimal strings) signed into raw bytes, never sent from here. */
export async function signTransaction(tx) {
  const signer = need();
  return signer.signTransaction({
    type: 2, to: tx.to, data: tx.data || "0x", value: BigInt(tx.value || 0),
    gasLimit: BigInt(tx.gas), nonce: Number(tx.nonce), chainId: BigInt(tx.chainId),
    maxFeePerGas: BigInt(tx.maxFeePerGas), maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas),
  });
}

/* Forget the key and its keystore (logout, idle, a new login). */
export function drop() {
  wallet = null;
  keystore = null;
  clearTimeout(idle.timer);
  idle.timer = null;
}

/* After `seconds` without touch(), drop the key and call expired(). */
export function armIdle(seconds, expired) {
  idle = { timer: null, ms: seconds * 1000, expired };
  touch();
}

/* The person did something: the idle clock starts again. */
export function touch() {
  if (!wallet || !idle.ms) return;
  clearTimeout(idle.timer);
  idle.timer = setTimeout(() => { drop(); idle.expired(); }, idle.ms);
}
