"""The market's store: participants, listings, bids, deals; a write returns once durable.

Every SQL statement of the market is a named method here (the tables, the connection and the
transactions are marketplace.database's).
"""

from __future__ import annotations

import json
from typing import Any

from marketplace.database import Database
from marketplace.rules import winner
from marketplace.states import ENDED, ENDED_LISTINGS, LIVE_DEALS, UNDER_WAY, DealState, ListingState


class Store(Database):
    """The market's queries over its database (SQLite or PostgreSQL, see Database)."""

    def _after_migrate(self) -> None:
        """Listings whose bids an earlier version stored get their bid count and highest bid
        (a store that kept them all along finds none to fill)."""
        stale = self.query("SELECT id FROM listings l WHERE bid_count = 0 AND EXISTS"
                           " (SELECT 1 FROM bids b WHERE b.listing_id = l.id)")
        with self.transaction():
            for row in stale:
                bids = self.bids(row["id"])
                best = winner([(b["id"], b["price"], b["bidder"]) for b in bids])
                self.write("UPDATE listings SET bid_count = ?, leader_bid = ?, leader_price = ?,"
                           " leader_bidder = ? WHERE id = ?", len(bids), *best, row["id"])

    # -- leases: one worker at a time does what must not be done twice ---------------------

    def hold_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease called name for holder; whether holder has it now.

        Another holder's lease is taken only once it expired, by the database's clock, so
        workers' clocks need not agree.
        """
        now = self.dialect.now
        rows = self.query(
            f"INSERT INTO leases (name, holder, expires) VALUES (?, ?, {now} + ?)"
            " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
            f" expires = excluded.expires WHERE leases.holder = excluded.holder"
            f" OR leases.expires < {now} RETURNING holder",
            name, holder, ttl_s,
        )
        return bool(rows)

    def release_lease(self, name: str, holder: str) -> None:
        """Give a lease up (on a clean stop), so another worker takes it without waiting."""
        self.write("DELETE FROM leases WHERE name = ? AND holder = ?", name, holder)

    # -- sign-in sessions that ended: a copy of their cookie opens nothing -----------------

    def end_session(self, sid: str, now: float, keep_s: float) -> None:
        """Remember that a session ended (logout); forget those ended keep_s ago."""
        self.write("INSERT INTO ended_sessions (sid, ended) VALUES (?, ?)"
                   " ON CONFLICT(sid) DO NOTHING", sid, now)
        self.write("DELETE FROM ended_sessions WHERE ended < ?", now - keep_s)

    def session_ended(self, sid: str) -> bool:
        """Whether a session was ended by its logout."""
        return self.one("SELECT 1 AS ended FROM ended_sessions WHERE sid = ?", sid) is not None

    # -- participants ----------------------------------------------------------------------

    def add_participant(
        self, address: str, name: str, role: str, board_id: str | None, meter: str | None
    ) -> None:
        """Record (or update) who an address is and which board measures it."""
        self.write(
            "INSERT INTO participants (address, name, role, board_id, meter_address)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(address) DO UPDATE SET name=excluded.name,"
            " role=excluded.role, board_id=excluded.board_id, meter_address=excluded.meter_address",
            address, name, role, board_id, meter,
        )

    def participant(self, address: str) -> dict[str, Any] | None:
        """One participant by address."""
        return self.one("SELECT * FROM participants WHERE address = ?", address)

    def participants(self) -> list[dict[str, Any]]:
        """Every participant, by name."""
        return self.query("SELECT * FROM participants ORDER BY name")

    # -- bridges: remote machines the admin registered, with the boards each may serve ----

    def add_bridge(
        self, bridge_id: str, token_sha256: str, boards: list[dict[str, str]], now: float
    ) -> str | None:
        """Register a bridge (a revoked one of the same id gives way); None, or why not: its
        id, a board or a meter is already another live bridge's."""
        with self.transaction():
            if self.one("SELECT id FROM bridges WHERE id = ? AND revoked IS NULL", bridge_id):
                return f"bridge {bridge_id} is already registered"
            for other in self.bridges():
                for board in other["boards"]:
                    for mine in boards:
                        if board["board_id"] == mine["board_id"]:
                            return f"board {mine['board_id']} is bridge {other['id']}'s"
                        if board["meter"].lower() == mine["meter"].lower():
                            return f"meter {mine['meter']} is bridge {other['id']}'s"
            self.write("DELETE FROM bridges WHERE id = ?", bridge_id)
            self.write("INSERT INTO bridges (id, token_sha256, boards, created)"
                       " VALUES (?, ?, ?, ?)", bridge_id, token_sha256, json.dumps(boards), now)
        return None

    def bridge(self, bridge_id: str) -> dict[str, Any] | None:
        """A live (not revoked) bridge with its token's hash and boards, or None."""
        row = self.one("SELECT * FROM bridges WHERE id = ? AND revoked IS NULL", bridge_id)
        return {**row, "boards": json.loads(row["boards"])} if row else None

    def bridges(self) -> list[dict[str, Any]]:
        """Every live bridge with its boards (no token hashes), by id."""
        rows = self.query("SELECT id, boards, created FROM bridges WHERE revoked IS NULL"
                          " ORDER BY id")
        return [{**row, "boards": json.loads(row["boards"])} for row in rows]

    def revoke_bridge(self, bridge_id: str, now: float) -> bool:
        """Revoke a bridge's credential; whether it was live."""
        return self.write("UPDATE bridges SET revoked = ? WHERE id = ? AND revoked IS NULL",
                          now, bridge_id) > 0

    # -- meter consents: enrollments waiting for (or sent with) the owner's signature -------

    def request_consent(
        self, owner: str, meter: str, board_id: str, kind: int, rated_power_w: int, now: float
    ) -> None:
        """Ask an owner to consent to a meter's enrollment; a request with other terms (or a
        failed one) starts afresh, one already sent or done with these terms stays."""
        self.write(
            "INSERT INTO meter_consents (owner, meter, board_id, kind, rated_power_w, created)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(owner, meter) DO UPDATE SET"
            " board_id = excluded.board_id, kind = excluded.kind,"
            " rated_power_w = excluded.rated_power_w, status = 'pending', tx_hash = NULL,"
            " created = excluded.created WHERE meter_consents.status = 'pending'"
            " OR meter_consents.kind <> excluded.kind"
            " OR meter_consents.rated_power_w <> excluded.rated_power_w",
            owner, meter, board_id, kind, rated_power_w, now,
        )

    def consent(self, owner: str, meter: str) -> dict[str, Any] | None:
        """One consent request by owner and meter."""
        return self.one("SELECT * FROM meter_consents WHERE owner = ? AND meter = ?", owner, meter)

    def consents(self, owner: str, status: str = "pending") -> list[dict[str, Any]]:
        """An owner's consent requests in a status, oldest first."""
        return self.query("SELECT * FROM meter_consents WHERE owner = ? AND status = ?"
                          " ORDER BY created", owner, status)

    def claim_consent(self, owner: str, meter: str, now: float) -> bool:
        """Take a pending consent for sending (status 'sending'), by one caller only: a retry
        pass, another worker's, or the owner's own second click find it taken."""
        return self.write("UPDATE meter_consents SET status = 'sending', claimed_at = ? WHERE"
                          " owner = ? AND meter = ? AND status = 'pending'",
                          now, owner, meter) == 1

    def release_stale_claims(self, before: float) -> int:
        """Consents taken for sending before `before` and never sent (the worker died between
        its claim and the send's record): pending again, for the owner or the retries."""
        return self.write("UPDATE meter_consents SET status = 'pending' WHERE status ="
                          " 'sending' AND claimed_at < ?", before)

    def consent_failed(self, owner: str, meter: str, tx_hash: str) -> None:
        """A consent's enrollment failed: pending again, unless another send took it since
        (a later one mined or in flight: its own outcome decides)."""
        self.write("UPDATE meter_consents SET status = 'pending', tx_hash = NULL WHERE owner = ?"
                   " AND meter = ? AND status = 'sent' AND tx_hash = ?", owner, meter, tx_hash)

    def set_consent_status(
        self, owner: str, meter: str, status: str, tx_hash: str | None = None
    ) -> None:
        """Mark a consent request sent (with its enrollment's hash), enrolled, or pending."""
        self.write("UPDATE meter_consents SET status = ?, tx_hash = ? WHERE owner = ? AND"
                   " meter = ?", status, tx_hash, owner, meter)

    # -- registrations: people who made their own key and await the admin -----------------

    def add_registration(
        self, address: str, name: str, keystore: str, serve_keystore: bool, now: float
    ) -> bool:
        """Record a person's registration with its encrypted keystore; False if name (in any
        case: "Bob" would pass for bob) or address is already taken. A rejected registration
        holds neither: its row gives way."""
        taken = self.one("SELECT address FROM participants WHERE address = ? OR lower(name) ="
                         " lower(?) UNION SELECT address FROM registrations WHERE status <>"
                         " 'rejected' AND (address = ? OR lower(name) = lower(?))",
                         address, name, address, name)
        if taken:
            return False
        self.write("DELETE FROM registrations WHERE status = 'rejected' AND (address = ? OR"
                   " lower(name) = lower(?))", address, name)
        self.write("INSERT INTO registrations (address, name, keystore, serve_keystore, created)"
                   " VALUES (?, ?, ?, ?, ?)", address, name, keystore, int(serve_keystore), now)
        return True

    def registration(self, address: str) -> dict[str, Any] | None:
        """One registration by address."""
        return self.one("SELECT * FROM registrations WHERE address = ?", address)

    def registrations(self, status: str | None = None) -> list[dict[str, Any]]:
        """Registrations, oldest first (only those in a status when given), without keystores."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        return self.query("SELECT address, name, serve_keystore, status, created FROM"
                          f" registrations {where} ORDER BY created", *args)

    def set_registration_status(self, address: str, status: str) -> None:
        """Approve or reject a registration."""
        self.write("UPDATE registrations SET status = ? WHERE address = ?", status, address)

    # -- listings and bids -----------------------------------------------------------------

    def add_listing(
        self, seller: str, energy_wh: int, start_price: int, created: float, deadline: float,
        closes_by: float | None = None, approval_tx: str | None = None,
        offer: dict[str, Any] | None = None, offer_signature: bytes | None = None,
        offer_hash: bytes | None = None,
    ) -> int:
        """Store a new open listing; its id. closes_by caps soft-close extensions;
        approval_tx is the seller's signed approval (or permit) the deal must wait for;
        offer, its signature and hash are the seller's signed EIP-712 Offer."""
        return self.insert(
            "INSERT INTO listings (seller, energy_wh, start_price, created, deadline, closes_by,"
            " approval_tx, offer, offer_signature, offer_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)",
            seller, energy_wh, start_price, created, deadline,
            deadline if closes_by is None else closes_by, approval_tx,
            None if offer is None else json.dumps({k: str(v) if isinstance(v, int) else v
                                                  for k, v in offer.items()}),
            None if offer_signature is None else "0x" + offer_signature.hex(),
            None if offer_hash is None else "0x" + offer_hash.hex(),
        )

    def listing_by_offer(self, offer_hash: bytes) -> dict[str, Any] | None:
        """The listing of a signed offer (by its EIP-712 hash), if one was listed."""
        return self.one("SELECT * FROM listings WHERE offer_hash = ?", "0x" + offer_hash.hex())

    def set_deadline(self, listing_id: int, deadline: float) -> None:
        """Move a listing's deadline (soft close)."""
        self.write("UPDATE listings SET deadline = ? WHERE id = ?", deadline, listing_id)

    def listing(self, listing_id: int) -> dict[str, Any] | None:
        """One listing by id."""
        return self.one("SELECT * FROM listings WHERE id = ?", listing_id)

    def lock_listing(self, listing_id: int) -> dict[str, Any] | None:
        """One listing by id, locked against other workers until the transaction() ends."""
        return self.one("SELECT * FROM listings WHERE id = ?" + self.dialect.for_update,
                        listing_id)

    def listings(self, status: str | None = None) -> list[dict[str, Any]]:
        """Listings, newest first, optionally of one status."""
        if status:
            return self.query("SELECT * FROM listings WHERE status = ? ORDER BY id DESC", status)
        return self.query("SELECT * FROM listings ORDER BY id DESC")

    def closed_listings(self, limit: int, party: str | None = None,
                        statuses: tuple[str, ...] = ENDED_LISTINGS) -> list[dict[str, Any]]:
        """Listings whose auction is over, the latest to end first, at most limit; only
        those party sold or won when given."""
        marks = ", ".join("?" for _ in statuses)
        where = f"status IN ({marks})"
        args: list[Any] = list(statuses)
        if party is not None:
            where += " AND (seller = ? OR (leader_bidder = ? AND status = ?))"
            args += [party, party, ListingState.SOLD]
        return self.query(f"SELECT * FROM listings WHERE {where}"
                          " ORDER BY deadline DESC, id DESC LIMIT ?", *args, limit)

    def listings_page(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Listings with ids above after, oldest first, at most limit (the published book)."""
        return self.query("SELECT * FROM listings WHERE id > ? ORDER BY id LIMIT ?", after, limit)

    def set_listing_status(
        self, listing_id: int, status: str, winning_bid: int | None = None
    ) -> None:
        """Move a listing to a new status."""
        self.write(
            "UPDATE listings SET status = ?, winning_bid = COALESCE(?, winning_bid) WHERE id = ?",
            status, winning_bid, listing_id,
        )

    def listed_wh(self, seller: str) -> int:
        """Energy a seller has committed and the escrow has not taken yet: open listings, and
        sold ones whose deal is not opened on chain (their tokens are still the seller's)."""
        row = self.one(
            "SELECT COALESCE(SUM(energy_wh), 0) AS wh FROM listings WHERE seller = ? AND"
            " (status = ? OR (status = ? AND id IN (SELECT listing_id FROM deals"
            " WHERE status = ? AND chain_deal_id IS NULL)))",
            seller, ListingState.OPEN, ListingState.SOLD, DealState.OPENING,
        )
        return int(row["wh"])

    def add_bid(
        self, listing_id: int, bidder: str, price: int, created: float,
        nonce: int, expiry: int, signature: bytes, buyer_meter: str | None = None,
        locked: dict[str, Any] | None = None,
    ) -> int:
        """Store a signed bid durably (with the meter it names); its id. The listing's bid
        count and highest bid (rules.winner: highest price, earliest on a tie) move with it,
        in the same transaction, so nothing reads every bid to know them. locked: the
        listing's row as lock_listing read it in the caller's open transaction (its leader
        then is not read again)."""
        with self.transaction():
            lead = locked if locked is not None and self._depth > 1 else self.one(
                "SELECT leader_bid, leader_price FROM listings WHERE id = ?"
                + self.dialect.for_update, listing_id)
            bid_id = self.insert(
                "INSERT INTO bids (listing_id, bidder, price, created, nonce, expiry, signature,"
                " buyer_meter) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                listing_id, bidder, price, created, nonce, expiry, "0x" + signature.hex(),
                buyer_meter,
            )
            if lead is not None and lead["leader_bid"] is not None \
                    and price <= lead["leader_price"]:
                self.write("UPDATE listings SET bid_count = bid_count + 1 WHERE id = ?",
                           listing_id)
            else:
                self.write("UPDATE listings SET bid_count = bid_count + 1, leader_bid = ?,"
                           " leader_price = ?, leader_bidder = ? WHERE id = ?",
                           bid_id, price, bidder, listing_id)
        return bid_id

    def bid_nonce_used(self, bidder: str, nonce: int) -> bool:
        """Whether a bidder already placed a bid with this nonce (a signed bid is placed once)."""
        return self.one("SELECT id FROM bids WHERE bidder = ? AND nonce = ?", bidder,
                        str(nonce)) is not None

    def unopened_deals(self, buyer: str) -> list[dict[str, Any]]:
        """A buyer's deals an auction made whose escrow deal is not open yet (Ether not locked)."""
        return self.query("SELECT * FROM deals WHERE buyer = ? AND status = ?"
                          " AND chain_deal_id IS NULL", buyer, DealState.OPENING)

    def committed(self, bidder: str, except_listing: int) -> list[dict[str, Any]]:
        """(price, energy_wh) of what a bidder's escrow must still cover: the open listings it
        leads, other than one, and its deals whose escrow deal is not open yet. One indexed
        statement, read in the number of those rows, not of bids."""
        return self.query(
            "SELECT leader_price AS price, energy_wh FROM listings WHERE leader_bidder = ?"
            " AND status = ? AND id != ? UNION ALL SELECT price, energy_wh FROM deals"
            " WHERE buyer = ? AND status = ? AND chain_deal_id IS NULL",
            bidder, ListingState.OPEN, except_listing, bidder, DealState.OPENING,
        )

    def bids(self, listing_id: int) -> list[dict[str, Any]]:
        """Every bid on a listing, in arrival order."""
        return self.query("SELECT * FROM bids WHERE listing_id = ? ORDER BY id", listing_id)

    def bid(self, bid_id: int) -> dict[str, Any] | None:
        """One bid by id."""
        return self.one("SELECT * FROM bids WHERE id = ?", bid_id)

    def due_listings(self, now: float) -> list[dict[str, Any]]:
        """Open listings whose deadline has come: the auctions to close."""
        return self.query(
            "SELECT * FROM listings WHERE status = ? AND deadline <= ?", ListingState.OPEN, now
        )

    def engaged(self, address: str) -> bool:
        """Whether an account sold or won a listing whose deal is not over yet (no deal yet
        counts: the auction is marked sold a moment before its deal is stored)."""
        return self.one(
            "SELECT l.id FROM listings l JOIN bids b ON b.id = l.winning_bid"
            " LEFT JOIN deals d ON d.listing_id = l.id"
            " WHERE l.status = ? AND (l.seller = ? OR b.bidder = ?)"
            f" AND (d.status IS NULL OR d.status NOT IN ({_marks(ENDED)}))",
            ListingState.SOLD, address, address, *ENDED,
        ) is not None

    # -- transactions the portal signed (receipts the app keeps) -----------------------------

    def save_transaction(self, record: dict[str, Any]) -> None:
        """Keep (or update) what the app knows of a transaction and its receipt."""
        self.write(
            "INSERT INTO transactions (tx_hash, sender, nonce, label, status, created, block,"
            " gas_used, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(tx_hash) DO UPDATE"
            " SET status = excluded.status, block = excluded.block,"
            " gas_used = excluded.gas_used, record = excluded.record",
            record["tx_hash"], record["sender"], record["nonce"], record["label"],
            record["status"], record["created"], record["block"], record["gas_used"],
            json.dumps(record),
        )

    def transactions(self, sender: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest transactions an address sent through the portal."""
        rows = self.query(
            "SELECT record FROM transactions WHERE sender = ? ORDER BY created DESC LIMIT ?",
            sender, limit,
        )
        return [json.loads(row["record"]) for row in rows]

    def transaction_record(self, tx_hash: str) -> dict[str, Any] | None:
        """One transaction's last known record, by hash."""
        row = self.one("SELECT record FROM transactions WHERE tx_hash = ?", tx_hash)
        return json.loads(row["record"]) if row else None

    # -- cursors of chain readers ---------------------------------------------------------

    def cursor(self, name: str) -> int | None:
        """The next block a chain reader called name should read, if it has read before."""
        row = self.one("SELECT block FROM cursors WHERE name = ?", name)
        return None if row is None else int(row["block"])

    def set_cursor(self, name: str, block: int) -> None:
        """Remember where a chain reader stopped."""
        self.write(
            "INSERT INTO cursors (name, block) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET block = excluded.block",
            name, block,
        )

    # -- bus disagreements: windows whose sellers' and buyers' meters did not agree ---------

    def add_bus_disagreement(
        self, at: float, sellers_out_wh: float, buyers_in_wh: float, boards: list[str],
        deals: list[int],
    ) -> int:
        """Record a bus check that failed, with the boards and deals it involved; its id."""
        return self.insert(
            "INSERT INTO bus_disagreements (at, sellers_out_wh, buyers_in_wh, boards, deals)"
            " VALUES (?, ?, ?, ?, ?)",
            at, sellers_out_wh, buyers_in_wh, json.dumps(boards), json.dumps(deals),
        )

    def bus_disagreements(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest bus disagreements first, boards and deals as lists."""
        rows = self.query("SELECT * FROM bus_disagreements ORDER BY id DESC LIMIT ?", limit)
        return [{**r, "boards": json.loads(r["boards"]), "deals": json.loads(r["deals"])}
                for r in rows]

    # -- deals -----------------------------------------------------------------------------

    def add_deal(
        self, listing_id: int, buyer: str, seller: str, price: int, energy_wh: int,
        expires_at: int | None = None,
    ) -> int:
        """Record the deal an auction produced, before it is opened on chain."""
        return self.insert(
            "INSERT INTO deals (listing_id, buyer, seller, price, energy_wh, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            listing_id, buyer, seller, price, energy_wh, expires_at,
        )

    def deal(self, deal_id: int) -> dict[str, Any] | None:
        """One deal by id."""
        return self.one("SELECT * FROM deals WHERE id = ?", deal_id)

    def deal_by_chain_id(self, chain_deal_id: int) -> dict[str, Any] | None:
        """The deal the escrow knows by this id, if it is one of this market's."""
        return self.one("SELECT * FROM deals WHERE chain_deal_id = ?", chain_deal_id)

    def deals(self, status: str | None = None) -> list[dict[str, Any]]:
        """Deals, newest first, optionally of one status."""
        if status:
            return self.query("SELECT * FROM deals WHERE status = ? ORDER BY id DESC", status)
        return self.query("SELECT * FROM deals ORDER BY id DESC")

    def live_deals(self) -> list[dict[str, Any]]:
        """Deals that still move energy or Ether: the ones settlement follows."""
        return self.query(
            f"SELECT * FROM deals WHERE status IN ({_marks(LIVE_DEALS)})", *LIVE_DEALS
        )

    def deal_under_way(self, buyer: str, except_deal: int) -> dict[str, Any] | None:
        """The buyer's first deal (other than one) its meter is busy with, or None: one
        delivering, paused or closing, or one still opening whose baseline report was sent
        (the escrow takes one started deal per meter: a second baseline would revert)."""
        return self.one(
            f"SELECT id FROM deals WHERE id != ? AND buyer = ? AND (status IN ({_marks(UNDER_WAY)})"
            " OR (status = ? AND baseline_wh IS NOT NULL)) ORDER BY id LIMIT 1",
            except_deal, buyer, *UNDER_WAY, DealState.OPENING,
        )

    def active_sales(self, seller: str) -> list[dict[str, Any]]:
        """A seller's deals delivering now (its board's budget covers what they still owe)."""
        return self.query("SELECT * FROM deals WHERE seller = ? AND status = ?", seller,
                          DealState.ACTIVE)

    def delivering_elsewhere(self, address: str, except_deal: int) -> bool:
        """Whether another deal of this party is delivering (a seller serving two buyers)."""
        return self.one(
            "SELECT id FROM deals WHERE id != ? AND status = ? AND (seller = ? OR buyer = ?)"
            " LIMIT 1", except_deal, DealState.ACTIVE, address, address,
        ) is not None

    def update_deal(self, deal_id: int, **fields: Any) -> None:
        """Change some fields of a deal."""
        names = ", ".join(f"{name} = ?" for name in fields)
        self.write(f"UPDATE deals SET {names} WHERE id = ?", *fields.values(), deal_id)


def _marks(values: tuple[object, ...]) -> str:
    """Placeholders for an IN list of these values."""
    return ", ".join("?" * len(values))
