"""The names accounts were created under (accounts.json), and which of them are admins."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from geth_private.files import locked, write_atomic
from marketplace.errors import InvalidInput
from marketplace.rules import parse_address


class AccountDirectory:
    """Name -> address of every account this portal created (demo or by the admin)."""

    def __init__(self, path: Path, admins: Sequence[str] = ()):
        self.path = path
        self.admins = list(admins)  # names or addresses that may use the admin page

    def names(self) -> dict[str, str]:
        """Every name with its address."""
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def address_of(self, name: str) -> str | None:
        """The address created under a name, if any."""
        return self.names().get(name)

    def create(self, name: str, new_account: Callable[[], str]) -> str:
        """Record a new account under a free name (InvalidInput if taken); its address."""
        return self._add(name, new_account, taken_ok=False)

    def ensure(self, name: str, new_account: Callable[[], str]) -> str:
        """The address under name, made (and recorded) first if there is none yet: portal
        workers starting at once on one data directory make one account, not one each."""
        return self._add(name, new_account, taken_ok=True)

    def _add(self, name: str, new_account: Callable[[], str], taken_ok: bool) -> str:
        # Read, extended and written back by one thread and one portal worker at a time: two
        # unlocked creations both read the old file and the later write dropped the other's.
        with locked(self.path):
            names = self.names()
            if name in names:
                if taken_ok:
                    return names[name]
                raise InvalidInput(f"the name {name!r} is taken")
            address = names[name] = new_account()  # e.g. a new keystore, once the name is free
            write_atomic(self.path, json.dumps(names, indent=1, sort_keys=True))
        return address

    def record(self, name: str, address: str) -> None:
        """Name an address whose key was made elsewhere (a person's own browser)."""
        self.create(name, lambda: address)

    def resolve(self, who: str) -> str:
        """The address of a name, or of an address as typed (InvalidInput if it is neither)."""
        return self.names().get(who) or parse_address(who)

    def name_of(self, address: str) -> str | None:
        """The name an address was created under, if any."""
        return next((n for n, a in self.names().items() if a == address), None)

    def is_admin(self, address: str) -> bool:
        """Whether the account is one of the admins (named, or given by address)."""
        names = self.names()
        return any(names.get(a, a).lower() == address.lower() for a in self.admins)
