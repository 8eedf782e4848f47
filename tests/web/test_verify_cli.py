"""`gridbid verify` says why it cannot run (exit 2), without a traceback."""

from __future__ import annotations

import json

from web.cli import main


def test_verify_names_what_it_lacks_and_what_failed(capsys, tmp_path):
    assert main(["verify"]) == 2
    assert "give --portal, or --rpc with --token and --escrow" in capsys.readouterr().err

    bad = tmp_path / "book.json"
    bad.write_text(json.dumps({"listings": [{"id": 1, "offer": {"seller": "nobody"}}]}))
    args = ["verify", "--book", str(bad), "--rpc", "http://127.0.0.1:9", "--token",
            "0x" + "11" * 20, "--escrow", "0x" + "22" * 20]
    assert main(args) == 2
    assert "the book is malformed: listing 1 offer: seller 'nobody' is not of type address" in (
        capsys.readouterr().err)

    bad.write_text(json.dumps({"listings": []}))
    assert main(args) == 2  # nothing listens on port 9
    assert "the node at http://127.0.0.1:9 did not answer" in capsys.readouterr().err

    assert main(["verify", "--portal", "http://127.0.0.1:9"]) == 2
    assert "GET http://127.0.0.1:9/api/chain failed" in capsys.readouterr().err
