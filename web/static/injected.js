/* An injected EIP-1193 wallet (window.ethereum, e.g. MetaMask) as the session's signer.

Only MetaMask's methods are used: eth_requestAccounts, eth_chainId, personal_sign,
eth_signTypedData_v4, eth_sendTransaction, wallet_addEthereumChain, wallet_switchEthereumChain.
Such wallets never hand back a signed transaction (no eth_signTransaction): they send it
through their own RPC URL and the page tells the portal its hash.
*/
import { ethers } from "ethers";

let account = null;  // the wallet's selected address (checksummed)

export function available() { return typeof window.ethereum === "object" && window.ethereum !== null; }
export function address() { return account; }

function request(method, params) {
  if (!available()) throw new Error("no browser wallet in this page");
  return window.ethereum.request(params === undefined ? { method } : { method, params });
}

const hex = (value) => ethers.toQuantity(BigInt(value));

/* Ask the wallet for its account; its address. */
export async function connect() {
  const accounts = await request("eth_requestAccounts");
  if (!accounts || !accounts.length) throw new Error("the browser wallet gave no account");
  account = ethers.getAddress(accounts[0]);
  return account;
}

export function forget() { account = null; }

export async function signMessage(text) {
  return request("personal_sign", [ethers.hexlify(ethers.toUtf8Bytes(text)), account]);
}

const DOMAIN_FIELDS = [["name", "string"], ["version", "string"], ["chainId", "uint256"],
  ["verifyingContract", "address"], ["salt", "bytes32"]];

/* eth_signTypedData_v4 wants the domain's own type spelled out. */
export async function signTypedData(domain, types, message) {
  const EIP712Domain = DOMAIN_FIELDS.filter(([name]) => domain[name] !== undefined)
    .map(([name, type]) => ({ name, type }));
  const primaryType = Object.keys(types).find((t) => t !== "EIP712Domain");
  const payload = { types: { ...types, EIP712Domain }, domain, primaryType, message };
  return request("eth_signTypedData_v4", [account, JSON.stringify(payload)]);
}

/* The wallet on our chain: switch to it, or add it first when it does not know it. */
export async function useChain(chain) {
  const wanted = hex(chain.chain_id);
  if ((await request("eth_chainId")).toLowerCase() === wanted) return;
  try {
    await request("wallet_switchEthereumChain", [{ chainId: wanted }]);
  } catch (err) {
    if (err.code !== 4902) throw err;
    await addChain(chain);
  }
}

/* wallet_addEthereumChain with the portal's filtering RPC proxy as the network's URL. */
export async function addChain(chain) {
  const rpc = new URL(chain.rpc_url, location.origin).href;
  await request("wallet_addEthereumChain", [{
    chainId: hex(chain.chain_id), chainName: `gridbid (${location.host})`, rpcUrls: [rpc],
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  }]);
}

/* The wallet signs and sends a prepared transaction itself; its hash. */
export async function sendTransaction(tx, chain) {
  await useChain(chain);
  const params = { from: account, to: tx.to, data: tx.data || "0x", value: hex(tx.value || 0),
    gas: hex(tx.gas), maxFeePerGas: hex(tx.maxFeePerGas),
    maxPriorityFeePerGas: hex(tx.maxPriorityFeePerGas) };
  if (tx.nonce !== undefined && tx.nonce !== null) params.nonce = hex(tx.nonce);
  return request("eth_sendTransaction", [params]);
}
