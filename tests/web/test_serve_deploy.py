"""deploy/ stays true to the code: its gridbid commands parse, its GRIDBID_* settings exist,
and nginx accepts its TLS site (compose itself cannot run here: no container engine)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from web.cli import parser
from web.config import DEFAULTS
from web.serve import SERVER_DEFAULTS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _commands() -> list[list[str]]:
    """Every gridbid command line of the compose file and of the systemd units."""
    compose = (DEPLOY / "compose.yaml").read_text()
    # The compose commands are flow sequences of quoted strings: JSON, once joined up.
    found = [json.loads(m) for m in re.findall(r"command: (\[[^\]]*\])", compose)]
    for unit in (DEPLOY / "systemd").glob("*.service"):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                # %i: the instance, the port in gridbid@5000.service
                found.append(shlex.split(line.removeprefix("ExecStart=").replace("%i", "5000")))
    return [c for c in found if Path(c[0]).name == "gridbid"]


def test_every_deploy_command_is_one_gridbid_takes():
    commands = _commands()
    assert {c[1] for c in commands} == {"run", "chain", "bridge"}
    for command in commands:
        try:
            parser().parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"gridbid refuses {shlex.join(command)}")


def test_every_deploy_setting_is_one_the_portal_reads():
    known = set(DEFAULTS) | set(SERVER_DEFAULTS)
    texts = [p.read_text() for p in (DEPLOY / "compose.yaml", DEPLOY / "gridbid.env.example",
                                     DEPLOY / "systemd" / "gridbid.env")]
    named = {m for text in texts for m in re.findall(r"GRIDBID_([A-Z_]+)", text)}
    assert named and named <= known, named - known


def test_nginx_takes_the_tls_site(tmp_path):
    nginx, openssl = shutil.which("nginx") or shutil.which("/usr/sbin/nginx"), \
        shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip("needs nginx and openssl (`make system-deps`)")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=grid.example.org", "-keyout", str(tmp_path / "privkey.pem"),
                    "-out", str(tmp_path / "fullchain.pem")], check=True, capture_output=True)
    site = (DEPLOY / "nginx" / "gridbid-site.conf").read_text()
    site = site.replace("/etc/ssl/gridbid", str(tmp_path)).replace(
        "/etc/nginx/gridbid-proxy.conf", str(DEPLOY / "nginx" / "gridbid-proxy.conf"))
    # Only the syntax is tested: ports 80/443 are never bound (nginx -t).
    (tmp_path / "nginx.conf").write_text(f"""
pid {tmp_path / 'nginx.pid'};
events {{}}
http {{
    include {DEPLOY / 'nginx' / 'upstream-systemd.conf'};
    {site}
}}""")
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                              "-e", str(tmp_path / "error.log")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_systemd_units_verify(tmp_path):
    """systemd-analyze reads each unit as systemd would (with the units' gridbid pointed at this
    checkout's, which it checks is executable): no unknown key, no bad value."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze (Debian's systemd package)")
    gridbid = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "gridbid"
    if not gridbid.exists():
        pytest.skip("needs the checkout's .venv/bin/gridbid (`make test-deps`)")
    for unit in (DEPLOY / "systemd").iterdir():
        text = unit.read_text().replace("/opt/gridbid/.venv/bin/gridbid", str(gridbid))
        (tmp_path / unit.name).write_text(text)
    units = sorted(str(p) for p in tmp_path.glob("*.service"))
    done = subprocess.run([analyze, "verify", *units], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), \
        done.stdout + done.stderr
