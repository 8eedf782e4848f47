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


def test_settle_interval_names_what_it_lacks(capsys, tmp_path):
    assert main(["settle-interval"]) == 2
    assert "give --portal to list its batches, or --batch-file" in capsys.readouterr().err
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps({"id": 1, "through_n": 5, "batch": {"positions": []},
                                 "operator_sig": "0x" + "11" * 65}))
    assert main(["settle-interval", "--batch-file", str(batch)]) == 2
    assert "give --portal, or --rpc with --settlement" in capsys.readouterr().err
    args = ["settle-interval", "--batch-file", str(batch), "--rpc", "http://127.0.0.1:9",
            "--settlement", "0x" + "33" * 20]
    assert main(args) == 2
    assert "give --key" in capsys.readouterr().err
    key = tmp_path / "key"
    key.write_text("not a key")
    assert main([*args, "--key", str(key)]) == 2
    assert "cannot be read (wrong passphrase, or not a keystore" in capsys.readouterr().err
    key.write_text("0x" + "42" * 32)
    batch.write_text(json.dumps({"id": 1, "through_n": 5, "batch": {"positions": []}}))
    assert main([*args, "--key", str(key)]) == 2
    assert "carries no operator signature: only the operator can send it" in (
        capsys.readouterr().err)
