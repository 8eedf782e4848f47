"""`gridbid bridge` on the command line: a bad board URI is refused before anything opens, and
a bridge started for a portal (--parent) ends when that process is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from geth_private.anvil import free_port
from tests.common import wait_for

ROOT = Path(__file__).resolve().parents[2]
GRIDBID = [sys.executable, "-m", "web.cli"]


def test_a_bad_board_uri_is_refused_with_what_to_write(tmp_path):
    done = subprocess.run(
        [*GRIDBID, "bridge", "--board", "emulator://pv-1?kind=solar", "--portal",
         "http://127.0.0.1:1", "--bridge-id", "site"], cwd=ROOT, capture_output=True, text=True,
        env={"GRIDBID_BRIDGE_TOKEN": "t", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 2
    assert "kind is producer or consumer" in done.stdout


def test_a_portals_bridge_ends_when_the_portal_is_killed(tmp_path):
    token = tmp_path / "token"
    token.write_text("t\n")
    # A stand-in portal process that starts the bridge as its child and then just waits.
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, subprocess, sys, time
        child = subprocess.Popen({GRIDBID!r} + ["bridge", "--wait", "--parent", str(os.getpid()),
            "--board", "emulator://load-1?kind=consumer", "--portal",
            "http://127.0.0.1:{free_port()}", "--bridge-id", "local", "--token-file",
            {str(token)!r}, "--data-dir", {str(tmp_path / "data")!r}])
        print(child.pid, flush=True)
        time.sleep(120)
        """)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        # The bridge runs its emulated board and keeps trying its (absent) portal meanwhile.
        wait_for(lambda: (tmp_path / "data" / "meters").exists(), timeout=30,
                 what="the bridge to start")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: not Path(f"/proc/{child}").exists()
                 or Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0] == "Z",
                 timeout=20, what="the bridge to end with its portal")
    finally:
        parent.kill()
        subprocess.run(["kill", "-9", str(child)], capture_output=True)
