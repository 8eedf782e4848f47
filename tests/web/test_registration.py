"""People register themselves: the key is made on their side, only its encrypted keystore is
uploaded, the admin approves with a role and a board; keystores are served only by opt-in."""

from __future__ import annotations

import pytest
from eth_account import Account

from gridbid_client.client import Client, ClientError
from gridbid_client.keys import unlock
from gridbid_client.transport import FlaskTransport


def _stranger(app, key=None):
    return Client(FlaskTransport(app.test_client()), key or Account.create())


def test_a_registered_person_signs_in_after_the_admins_approval(app, login):
    dave = _stranger(app)
    assert dave.register("dave", "dave's own passphrase", scrypt_n=2**10)["status"] == "pending"
    with pytest.raises(ClientError) as refused:
        dave.login()
    assert refused.value.status == 403 and refused.value.kind == "RegistrationPending"
    admin = login("admin")
    pending = admin.get("/api/admin/registrations").get_json()["registrations"]
    assert [(r["name"], r["address"]) for r in pending] == [("dave", dave.account.address)]
    approved = admin.post(f"/api/admin/registrations/{dave.account.address}/approve",
                          json={"role": "consumer", "board_id": "load-dave"})
    assert approved.status_code == 200, approved.get_json()
    assert dave.login()["name"] == "dave"
    assert dave.me()["role"] == "consumer"
    assert dave.wallet()["name"] == "dave"
    # A registration is the person's own: the admin never saw, made or held the key.
    assert "keystore" not in pending[0]


def test_a_keystore_is_served_only_where_its_owner_asked(app, login):
    admin = login("admin")
    kept, private = _stranger(app), _stranger(app)
    kept.register("erin", "erin's passphrase", serve_keystore=True, scrypt_n=2**10)
    private.register("finn", "finn's passphrase", scrypt_n=2**10)
    for who in (kept, private):
        admin.post(f"/api/admin/registrations/{who.account.address}/approve",
                   json={"role": "producer"})
    served = app.test_client().get(f"/api/accounts/{kept.account.address}/keystore")
    assert served.status_code == 200
    assert unlock(served.get_json(), "erin's passphrase").address == kept.account.address
    hidden = app.test_client().get(f"/api/accounts/{private.account.address}/keystore")
    assert hidden.status_code == 404 and "import your keystore" in hidden.get_json()["error"]
    listed = {a["name"]: a["keystore"] for a in
              app.test_client().get("/api/accounts").get_json()["accounts"]}
    assert listed["erin"] is True and listed["finn"] is False


def test_registration_refuses_a_keystore_of_another_key_and_taken_names(app):
    mallory = _stranger(app)
    other = Account.create()
    message = mallory.post("/api/login/message", {"address": mallory.account.address})["message"]
    from eth_account.messages import encode_defunct

    signature = "0x" + bytes(mallory.account.sign_message(
        encode_defunct(text=message)).signature).hex()
    forged = Account.encrypt(other.key, "x", kdf="scrypt", iterations=2**10)
    with pytest.raises(ClientError, match="not of the key that signed"):
        mallory.post("/api/register", {"name": "mallory", "keystore": forged,
                                       "message": message, "signature": signature})
    with pytest.raises(ClientError, match="reserved"):
        _stranger(app).register("bob", "a passphrase", scrypt_n=2**10)  # a demo name


def test_only_admins_see_and_approve_registrations(app, login):
    dave = _stranger(app)
    dave.register("dave", "dave's passphrase", scrypt_n=2**10)
    bob = login("bob")
    assert bob.get("/api/admin/registrations").status_code == 403
    refused = bob.post(f"/api/admin/registrations/{dave.account.address}/approve",
                       json={"role": "consumer"})
    assert refused.status_code == 403
    with pytest.raises(ClientError):
        dave.login()


@pytest.mark.parametrize("app", [{"DEMO_ACCOUNTS": False, "ADMINS": "admin,ops",
                                  "LOGIN_BURST": 100}], indirect=True)
def test_names_that_would_seat_an_admin_or_a_demo_account_are_reserved(app, login):
    # Found in review: with the demo off, a stranger registered "carol" (once the demo is turned
    # on, the demo seats that address: keystore served, logins loopback-only), or "ops", a name
    # ADMINS lists but no account had yet: approved, the stranger was an admin.
    ops = _stranger(app)
    for name in ("ops", "carol", "Admin", "OPS"):
        with pytest.raises(ClientError, match="reserved"):
            (ops if name == "ops" else _stranger(app)).register(name, "a pass", scrypt_n=2**10)
    admin = login("admin")
    assert admin.get("/api/admin/registrations").get_json()["registrations"] == []
    with pytest.raises(ClientError):
        ops.login()  # nothing to approve: the name never became the stranger's


@pytest.mark.parametrize("app", [{"LOGIN_BURST": 100}], indirect=True)
def test_a_rejected_registration_frees_its_name_and_a_lookalike_name_is_refused(app, login):
    # Found in review: a rejected registration held its name and its key out for good, and
    # "Bob" could be registered beside bob (sending by name tells them apart by case alone).
    admin = login("admin")
    squatter = _stranger(app)
    squatter.register("gina", "a pass", scrypt_n=2**10)
    refused = admin.post(f"/api/admin/registrations/{squatter.account.address}/reject")
    assert refused.status_code == 200
    gina = _stranger(app)
    assert gina.register("gina", "gina's pass", scrypt_n=2**10)["status"] == "pending"
    assert squatter.register("gina2", "a pass", scrypt_n=2**10)["status"] == "pending"
    for lookalike in ("Gina", "GINA2"):
        with pytest.raises(ClientError, match="already registered"):
            _stranger(app).register(lookalike, "a pass", scrypt_n=2**10)
    pending = admin.get("/api/admin/registrations").get_json()["registrations"]
    assert sorted((r["name"], r["address"], r["status"]) for r in pending) == sorted(
        [("gina", gina.account.address, "pending"),
         ("gina2", squatter.account.address, "pending")])
