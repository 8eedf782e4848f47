/* A stand-in for MetaMask in the browser tests: window.ethereum with MetaMask's method set and
   nothing more (no eth_signTransaction), signing with ethers from a test key and sending through
   the portal's /rpc with eth_sendRawTransaction. KEY and CHAIN are filled in by the test. */
(() => {
  const KEY = __KEY__, CHAIN = __CHAIN__;
  const calls = [];
  window.__walletCalls = calls;
  let ethers;
  const lib = async () => {
    if (!ethers) ethers = (await import("/static/vendor/ethers.min.js")).ethers;
    return ethers;
  };
  const rpc = async (method, params) => {
    const r = await fetch("/rpc", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({jsonrpc: "2.0", id: 1, method, params})});
    const answer = await r.json();
    if (answer.error) throw new Error(answer.error.message);
    return answer.result;
  };
  const unsupported = (method) => Object.assign(new Error("method not supported"), {code: 4200});
  const methods = {
    eth_requestAccounts: async () => [(await lib()).computeAddress(KEY)],
    eth_chainId: async () => CHAIN,
    wallet_switchEthereumChain: async ([p]) => {
      if (p.chainId !== CHAIN) throw Object.assign(new Error("unknown chain"), {code: 4902});
      return null;
    },
    wallet_addEthereumChain: async () => null,
    personal_sign: async ([data]) => new (await lib()).Wallet(KEY).signMessage((await lib()).getBytes(data)),
    eth_signTypedData_v4: async ([, json]) => {
      const typed = JSON.parse(json);
      delete typed.types.EIP712Domain;
      return new (await lib()).Wallet(KEY).signTypedData(typed.domain, typed.types, typed.message);
    },
    eth_sendTransaction: async ([tx]) => {
      const e = await lib();
      const wallet = new e.Wallet(KEY);
      const nonce = tx.nonce !== undefined ? Number(tx.nonce)
        : Number(await rpc("eth_getTransactionCount", [wallet.address, "pending"]));
      const raw = await wallet.signTransaction({type: 2, chainId: BigInt(CHAIN), nonce, to: tx.to,
        data: tx.data, value: BigInt(tx.value || 0), gasLimit: BigInt(tx.gas),
        maxFeePerGas: BigInt(tx.maxFeePerGas), maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas)});
      return rpc("eth_sendRawTransaction", [raw]);
    },
  };
  window.ethereum = {
    isMetaMask: true,
    request: async ({method, params}) => {
      calls.push(method);
      if (!Object.hasOwn(methods, method)) throw unsupported(method);
      return methods[method](params || []);
    },
  };
})();
