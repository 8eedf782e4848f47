"""URL converters: `<int:…>` path parts of ASCII digits only."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter


class AsciiIntegerConverter(IntegerConverter):
    """Werkzeug's `int` matches `\\d+`, every script's digits: /api/listings/١٢٣ was listing 123.

    Only 0-9 match here, so such a path finds no route (404) instead of another id.
    """

    regex = r"[0-9]+"
