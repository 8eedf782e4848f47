"""Fixtures that run Debian's PostgreSQL and Redis on loopback for the scale-out tests.

Each server is started in a temporary directory on a free port and stopped at the end of the
session (simulation.chaos.services holds the servers); a missing package is installed with
apt-get when that is possible, and the tests that need it are skipped, saying why, only when
it is not.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from geth_private.anvil import free_port
from simulation.chaos.services import PostgresServer, RedisServer, ServiceUnavailable, need


def _need(find, package: str) -> str:
    """A binary, installing its Debian package first if it is missing; skips if impossible."""
    try:
        return need(find, package)
    except ServiceUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """PostgreSQL for the whole session (skips, saying why, where it cannot run)."""
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e .")
    try:
        server = PostgresServer()
    except ServiceUnavailable as err:
        pytest.skip(str(err))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh PostgreSQL database for one test."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server on a free loopback port, persisting nothing (skips where it cannot run)."""
    pytest.importorskip("redis", reason="the redis package is not installed")
    try:
        server = RedisServer()
    except ServiceUnavailable as err:
        pytest.skip(str(err))
    yield server.url
    server.stop()


class NginxServer:
    """Debian's nginx on a free loopback port, run in the foreground from a conf under `root`.

    Every path nginx writes (pid, logs, temp files) is under root; the conf's http block gets
    them from here, so a test writes only its upstreams and server block.
    """

    def __init__(self, root, http: str) -> None:
        binary = _need(lambda: shutil.which("nginx") or shutil.which("/usr/sbin/nginx"), "nginx")
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = root / "nginx.conf"
        self.write(http)
        # -e: the error log before the conf is read (else nginx opens /var/log/nginx first).
        self.command = [binary, "-p", str(root), "-c", str(self.conf),
                        "-e", str(root / "error.log")]
        checked = subprocess.run([*self.command, "-t"], capture_output=True, text=True)
        if checked.returncode != 0:
            raise AssertionError(f"nginx refused its conf: {checked.stderr}")
        self.process = subprocess.Popen([*self.command, "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"nginx did not listen on port {self.port}: "
                                         f"{(root / 'error.log').read_text()[-1000:]}") from None
                time.sleep(0.05)

    def write(self, http: str) -> None:
        """(Re)write the conf: one worker, paths under root, then the given http contents."""
        import pwd

        root = self.root
        # As root nginx's workers would run as nobody, who cannot enter pytest's 0700 tmp.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        temp = "\n".join(f"    {kind}_temp_path {root / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf.write_text(f"""{user}
worker_processes 1;
pid {root / 'nginx.pid'};
error_log {root / 'error.log'} info;
events {{ worker_connections 256; }}
http {{
    access_log {root / 'access.log'};
{temp}
{http.replace('PORT', str(self.port))}
}}
""")

    def reload(self, http: str) -> None:
        """A new conf, taken by nginx's master without dropping its port (SIGHUP)."""
        self.write(http)
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop nginx (fast shutdown) and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
