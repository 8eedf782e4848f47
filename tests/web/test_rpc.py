"""POST /rpc: reads and signed transactions pass, everything that would rewrite the chain does not;
GET /api/chain: the chain's public facts."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from geth_private.anvil import find_anvil
from tests.common import csrf_client, wait_for

ETH = 10**18
both_chains = pytest.mark.parametrize(
    "app", ["embedded://", pytest.param("anvil://", marks=pytest.mark.skipif(
        find_anvil() is None, reason="anvil not installed: `npm ci` installs it"))],
    indirect=True)
REFUSED = [
    # (method, params) an attacker sends a dev chain's RPC; each answered -32601.
    ("anvil_setBalance", ["{attacker}", hex(10**6 * ETH)]),
    ("anvil_impersonateAccount", ["{operator}"]),
    ("anvil_setCode", ["{escrow}", "0x00"]),
    ("anvil_setStorageAt", ["{escrow}", "0x0", "0x" + "11" * 32]),
    ("anvil_mine", ["0x1"]),
    ("anvil_setAutomine", [False]),
    ("evm_setAutomine", [False]),
    ("evm_setAccountBalance", ["{attacker}", hex(10**6 * ETH)]),
    ("evm_snapshot", []),
    ("evm_revert", ["0x1"]),
    ("evm_increaseTime", ["0xffff"]),
    ("hardhat_setBalance", ["{attacker}", hex(10**6 * ETH)]),
    ("hardhat_impersonateAccount", ["{operator}"]),
    ("eth_sendTransaction", [{"from": "{faucet}", "to": "{attacker}", "value": hex(ETH)}]),
    ("eth_sign", ["{faucet}", "0xdeadbeef"]),
    ("eth_signTransaction", [{"from": "{faucet}", "to": "{attacker}"}]),
    ("eth_signTypedData_v4", ["{faucet}", "{}"]),
    ("personal_sign", ["0xdeadbeef", "{faucet}"]),
    ("personal_unlockAccount", ["{faucet}", "", 0]),
    ("debug_traceTransaction", ["0x" + "00" * 32]),
    ("admin_peers", []),
    ("miner_stop", []),
    ("txpool_content", []),
    ("eth_coinbase", []),
]


def rpc(client, method, params=None, ident=1, **kwargs):
    answer = client.post("/rpc", json={"jsonrpc": "2.0", "id": ident, "method": method,
                                       "params": params or []}, **kwargs)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def _fill(params, names):
    if isinstance(params, str):
        return params.format(**names) if params.startswith("{") and params != "{}" else params
    if isinstance(params, list):
        return [_fill(p, names) for p in params]
    if isinstance(params, dict):
        return {k: _fill(v, names) for k, v in params.items()}
    return params


def _signed_transfer(runtime, sender_name, to, wei, **change):
    people = {a["name"]: a for a in runtime.demo_accounts}
    key = runtime.keystore.unlock(people[sender_name]["address"],
                                  people[sender_name]["passphrase"])
    tx = {**runtime.txm.suggest(key.address, {"to": to, "value": wei, "gas": 21_000}), **change}
    return "0x" + bytes(key.sign_transaction(tx).raw_transaction).hex()


@both_chains
def test_reads_pass_and_the_nodes_accounts_are_never_offered(app, runtime):
    client = app.test_client()  # no session, no CSRF token: the RPC needs neither
    faucet = runtime.backend.faucet().address
    assert rpc(client, "eth_chainId")["result"] == hex(runtime.ledger.chain_id())
    assert int(rpc(client, "eth_getBalance", [faucet, "latest"])["result"], 16) == (
        runtime.ledger.eth_balance(faucet))
    first = runtime.ledger.block_number()  # the runtime's loops mine meanwhile (mints)
    assert first <= int(rpc(client, "eth_blockNumber")["result"], 16) <= (
        runtime.ledger.block_number())
    assert rpc(client, "eth_accounts") == {"jsonrpc": "2.0", "id": 1, "result": []}
    head = rpc(client, "eth_getBlockByNumber", ["latest", False])["result"]
    assert head["hash"].startswith("0x") and head["number"].startswith("0x")
    code = rpc(client, "eth_getCode", [runtime.ledger.escrow.address, "latest"])["result"]
    assert len(code) > 100
    batch = client.post("/rpc", json=[
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": 7, "method": "anvil_setBalance", "params": [faucet, "0x0"]},
    ]).get_json()
    assert [a["id"] for a in batch] == ["a", 7]
    assert batch[0]["result"] == hex(runtime.ledger.chain_id())
    assert batch[1]["error"]["code"] == -32601


@both_chains
def test_rewriting_methods_are_refused_and_change_nothing(app, runtime):
    client = app.test_client()
    ledger = runtime.ledger
    attacker = Account.create().address
    names = {"attacker": attacker, "operator": ledger.operator.address,
             "escrow": ledger.escrow.address, "faucet": runtime.backend.faucet().address}
    w3, start = runtime.backend.w3, ledger.block_number()
    before = {who: ledger.eth_balance(a) for who, a in names.items()}
    code = w3.eth.get_code(ledger.escrow.address)
    for method, params in REFUSED:
        answer = rpc(client, method, _fill(params, names))
        assert answer["error"]["code"] == -32601, method
        assert "method not offered by this portal's RPC" in answer["error"]["message"]
    # The operator pays gas for the runtime's own sends meanwhile (mints): each of its
    # transactions mined since is one the portal sent, none the refused calls asked for.
    for number in range(start + 1, ledger.block_number() + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == ledger.operator.address:
                assert runtime.txm.record(w3.to_hex(tx["hash"])) is not None, tx
    after = {who: ledger.eth_balance(a) for who, a in names.items()}
    assert {**after, "operator": None} == {**before, "operator": None}
    assert w3.eth.get_code(ledger.escrow.address) == code
    assert runtime.backend.is_mining()
    if runtime.backend.uri.startswith("anvil"):
        # Straight to the node, the first of them would have worked: the proxy is the guard.
        runtime.backend.rpc_request("anvil_setBalance", [attacker, hex(ETH)])
        assert ledger.eth_balance(attacker) == ETH


@both_chains
def test_a_signed_transfer_goes_through_the_journal(app, runtime):
    client = app.test_client()
    carol = {a["name"]: a["address"] for a in runtime.demo_accounts}["carol"]
    before = runtime.ledger.eth_balance(carol)
    raw = _signed_transfer(runtime, "bob", carol, ETH // 10)
    tx_hash = rpc(client, "eth_sendRawTransaction", [raw])["result"]
    assert runtime.txm.record(tx_hash) is not None  # journaled like the page's
    wait_for(lambda: runtime.ledger.eth_balance(carol) == before + ETH // 10, what="the transfer")
    receipt = wait_for(lambda: rpc(client, "eth_getTransactionReceipt", [tx_hash])["result"],
                       what="its receipt")
    assert receipt["status"] == "0x1"

    other_chain = _signed_transfer(runtime, "bob", carol, 1, chainId=1)
    refused = rpc(client, "eth_sendRawTransaction", [other_chain])["error"]
    assert refused["code"] == -32000 and "signed for chain 1" in refused["message"]
    garbage = rpc(client, "eth_sendRawTransaction", ["0x1234"])["error"]
    assert garbage["code"] == -32602 and "not a signed transaction" in garbage["message"]


def test_bad_requests_get_json_rpc_errors_not_500(app, runtime, login):
    client = app.test_client()
    for body, code in [(b"{not json", -32700), (b"", -32700), (b"[]", -32600),
                       (b'{"id": 1, "method": "eth_chainId"}', -32600),
                       (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', -32600),
                       (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": {}}',
                        -32602),
                       (b'[1]', -32600)]:
        answer = client.post("/rpc", data=body, content_type="application/json")
        assert answer.status_code == 200, body
        got = answer.get_json()
        got = got[0] if isinstance(got, list) else got
        assert got["error"]["code"] == code, body
    bad = rpc(client, "eth_getBalance", ["0x12", "latest"])
    assert "error" in bad
    # A logged-in session's cookie adds nothing: the same answers, and no token is asked.
    bob = login("bob")
    bob.environ_base.pop("HTTP_X_CSRF_TOKEN")
    assert rpc(bob, "eth_accounts")["result"] == []
    assert rpc(bob, "eth_sendTransaction", [{}])["error"]["code"] == -32601
    assert bob.post("/api/logout").status_code == 403  # elsewhere the token is still asked


@pytest.mark.parametrize("app", [{"RPC_RATE_PER_S": 1}], indirect=True)
def test_each_client_is_rate_limited(app, runtime):
    client = app.test_client()
    calls = [{"jsonrpc": "2.0", "id": i, "method": "eth_accounts"} for i in range(100)]
    assert len(client.post("/rpc", json=calls).get_json()) == 100  # a burst fits
    limited = client.post("/rpc", json=calls[:5])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.get_json()["error"]["code"] == -32005
    assert "per client" in limited.get_json()["error"]["message"]
    # Another client is not held up by the first one's calls.
    other = app.test_client()
    assert rpc(other, "eth_accounts", environ_base={"REMOTE_ADDR": "10.0.0.7"})["result"] == []


@pytest.mark.parametrize("app", ["embedded://", pytest.param("anvil://", marks=pytest.mark.skipif(
    find_anvil() is None, reason="anvil not installed"))], indirect=True)
def test_web3_uses_the_proxy_as_a_normal_endpoint(app, runtime, server):
    w3 = Web3(Web3.HTTPProvider(f"{server}/rpc"))
    ledger = runtime.ledger
    assert w3.eth.chain_id == ledger.chain_id()
    alice = {a["name"]: a["address"] for a in runtime.demo_accounts}["alice"]
    token = w3.eth.contract(address=ledger.token.address, abi=ledger.token.abi)
    wait_for(lambda: ledger.token_balance(alice) > 0, what="alice's first minted tokens")
    # At one block: the runtime's loops may mint between two reads of the head.
    block = w3.eth.block_number
    assert token.functions.balanceOf(alice).call(block_identifier=block) == \
        ledger.token.functions.balanceOf(alice).call(block_identifier=block) > 0
    assert w3.eth.get_balance(alice) == ledger.eth_balance(alice)
    assert w3.eth.accounts == []
    carol = {a["name"]: a["address"] for a in runtime.demo_accounts}["carol"]
    before = ledger.eth_balance(carol)
    tx_hash = w3.eth.send_raw_transaction(_signed_transfer(runtime, "bob", carol, 12345))
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
    assert ledger.eth_balance(carol) == before + 12345


def test_the_chain_in_plain_sight(app, runtime):
    facts = csrf_client(app).get("/api/chain")  # no login: these are public
    assert facts.status_code == 200
    chain = facts.get_json()
    assert chain["chain_id"] == runtime.ledger.chain_id()
    assert chain["rpc_url"] == "http://localhost/rpc"
    assert chain["contracts"] == runtime.ledger.addresses()
    assert chain["compiler"].startswith("solc 0.8.")
    assert chain["evm_version"] == "prague"  # the set the embedded chain runs
    assert chain["block_production"]["by"] == "operator"
    assert "one node" in chain["block_production"]["why"]


@pytest.mark.parametrize("app", [{"PROXY_HOPS": 1}], indirect=True)
def test_the_rpc_url_is_the_one_the_browser_reached(app, runtime):
    behind = app.test_client().get("/api/chain", headers={
        "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "grid.example.org"})
    assert behind.get_json()["rpc_url"] == "https://grid.example.org/rpc"
