"""PostgreSQL and Redis as throwaway servers on loopback, killable and restartable in place.

The chaos day kills them with SIGKILL and starts them again on the same port and files; the
scale-out tests (tests/services.py) use the same classes for their session servers.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from geth_private.anvil import free_port


class ServiceUnavailable(RuntimeError):
    """A server cannot be installed or started here; the message says why."""


def apt_install(package: str) -> str | None:
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


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server program (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def need(find, package: str) -> str:
    """A binary, installing its Debian package first if it is missing."""
    path = find()
    if path is None:
        why = apt_install(package)
        path = find()
        if path is None:
            raise ServiceUnavailable(f"{package} is not installed and could not be ({why}); "
                                     f"run `make system-deps` as root to install it")
    return path


def _wait(ready, alive, what: str, timeout: float) -> None:
    """Poll ready() until true; ServiceUnavailable if alive() turns false or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive() or time.monotonic() > deadline:
            raise ServiceUnavailable(f"{what} did not come up within {timeout:g} s")
        time.sleep(0.05)


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth), one database per user."""

    def __init__(self) -> None:
        initdb = need(lambda: postgres_bin("initdb"), "postgresql")
        self.pg_ctl = postgres_bin("pg_ctl")
        # Under the system's temporary directory: as root the cluster's owner is `postgres`,
        # who cannot enter a caller's private directory (pytest's tmp_path is 0700).
        self.dir = tempfile.mkdtemp(prefix="gridbid-pg-")
        self.port = free_port()
        # PostgreSQL refuses to run as root: as root, the cluster belongs to `postgres`.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        self._run([initdb, "-D", self.data, "-A", "trust", "-U", "gridbid", "-E", "UTF8"])
        self._names = itertools.count(1)
        self.start()

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(self.as_user + command, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceUnavailable(f"PostgreSQL could not be started: {command[0]} said "
                                     f"{(done.stderr or done.stdout).strip()[-300:]}")

    def start(self) -> None:
        """Start the server (again, after a kill: it recovers from its write-ahead log)."""
        self._run([self.pg_ctl, "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                   "-o", self._options(), "start"])

    def _options(self) -> str:
        return f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"

    def restart(self, mode: str = "fast") -> None:
        """Restart the server (pg_ctl's fast: sessions ended; immediate: as after a crash)."""
        # -l and -o as at start: the new server must not write to (and hold) this pipe.
        self._run([self.pg_ctl, "-D", self.data, "-m", mode, "-w", "-l",
                   os.path.join(self.dir, "log"), "-o", self._options(), "restart"])

    def pause(self) -> None:
        """Stop the server, keeping its files (resume() starts it again)."""
        self._run([self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop"])

    def resume(self) -> None:
        """Start a paused server again, on the same port."""
        self.start()

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            return int(Path(self.data, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash would (no shutdown checkpoint)."""
        pid = self.pid()
        if pid is None:
            return
        # The backends would notice their postmaster's death only at their next wake-up; a
        # crashed machine takes them all at once, so they go with it.
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        for victim in [pid, *map(int, children.stdout.split())]:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait(lambda: not Path(f"/proc/{pid}").exists(), lambda: True, "the killed postmaster "
              "to go", 10)

    def ready(self) -> bool:
        """Whether the server accepts a connection and answers a query."""
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2) as db:
                db.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

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

    def stop(self, remove: bool = True) -> None:
        """Stop the cluster (and remove its files unless asked to keep them)."""
        subprocess.run(self.as_user + [self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"],
                       capture_output=True)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A redis-server on a free loopback port, persisting nothing, restartable on that port."""

    def __init__(self, log_path: str | None = None) -> None:
        import redis  # noqa: F401 - the client the portal uses; without it nothing talks to us

        self.binary = need(lambda: shutil.which("redis-server"), "redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=out, stderr=subprocess.STDOUT,
        )
        process = self.process
        try:
            _wait(self.ready, lambda: process.poll() is None, f"redis-server on {self.port}", 10)
        except ServiceUnavailable:
            process.kill()
            raise

    def ready(self) -> bool:
        """Whether the server answers PING."""
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=2).ping())
        except redis.RedisError:
            return False

    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.process.pid if self.process and self.process.poll() is None else None

    def kill(self) -> None:
        """SIGKILL the server: every queued message and subscription is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
