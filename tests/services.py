"""Fixtures that run Debian's PostgreSQL and Redis on loopback for the scale-out tests.

Each server is started in a temporary directory on a free port and stopped at the end of the
session; a missing package is installed with apt-get when that is possible, and the tests
that need it are skipped, saying why, only when it is not.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from geth_private.anvil import free_port


def _apt_install(package: str) -> str | None:
    """Install a Debian package; None on success, else why it could not be."""
    if shutil.which("apt-get") is None:
        return "this system has no apt-get"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and shutil.which("sudo") is None:
        return "not root and no sudo"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(sudo + command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return None


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _need(find, package: str) -> str:
    """A binary, installing its Debian package first if it is missing; skips if impossible."""
    path = find()
    if path is None:
        why = _apt_install(package)
        path = find()
        if path is None:
            pytest.skip(f"{package} is not installed and could not be ({why}); "
                        f"run `make system-deps` as root to install it")
    return path


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth), one database per test."""

    def __init__(self) -> None:
        initdb = _need(lambda: _postgres_bin("initdb"), "postgresql")
        self.pg_ctl = _postgres_bin("pg_ctl")
        self.dir = tempfile.mkdtemp(prefix="gridbid-pg-")
        self.port = free_port()
        # PostgreSQL refuses to run as root: as root, the cluster belongs to `postgres`.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        self._run([initdb, "-D", self.data, "-A", "trust", "-U", "gridbid", "-E", "UTF8"])
        self._run([self.pg_ctl, "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                   "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
                   "start"])
        self._names = itertools.count(1)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(self.as_user + command, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"PostgreSQL could not be started: {command[0]} said "
                        f"{(done.stderr or done.stdout).strip()[-300:]}")

    def url(self, database: str = "postgres") -> str:
        """The URL of one database of this cluster."""
        return f"postgresql://gridbid@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"gridbid_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the cluster and remove its files."""
        subprocess.run(self.as_user + [self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """PostgreSQL for the whole session (skips, saying why, where it cannot run)."""
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e .")
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh PostgreSQL database for one test."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server on a free loopback port, persisting nothing (skips where it cannot run)."""
    redis = pytest.importorskip("redis", reason="the redis package is not installed")
    binary = _need(lambda: shutil.which("redis-server"), "redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.skip(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(10)


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
