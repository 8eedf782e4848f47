"""Where the portal's bids wait: a diagnosis bench/portal.py installs in its portal child.

BENCH_DIAG=FILE appends to FILE, one line each (monotonic seconds first, so the lines of a
round can be cut out): every garbage collection of 2 ms or more (wall and CPU; once, what a
slow full collection walked), every loop pass of 5 ms or more (wall and the pass's own CPU),
every hold of 5 ms or more (wall and the holder's own CPU) of the store's connection lock
(`held store`) and of the market's lock (`held market`: bids, listings, cancels, closes)
with where it was let go, every COMMIT of 2 ms or more, and every time a 1 ms sleep woke
15 ms or more late (`stall`). BENCH_DIAG_SYNC=NORMAL (an experiment, never a setting): the
store's SQLite commits without their fsync, to see what share of a bid's wait is the disk's.
Installed before gunicorn forks, so the worker inherits it. Not for measuring speed: the
wrappers cost a little on every statement.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
from collections import Counter
from typing import IO, Any


def install(path: str) -> None:
    """Every probe below, writing to path."""
    out = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
    _collections(out)
    _loop_passes(out)
    _locks(out)
    threading.Thread(target=_stalls, args=(out,), daemon=True).start()


def _line(out: IO[str], text: str) -> None:
    out.write(f"{time.monotonic():.3f} pid {os.getpid()} {text}\n")


def _collections(out: IO[str]) -> None:
    began = [0.0, 0.0]
    told: list[int] = []

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[:] = [time.perf_counter(), time.thread_time()]
            return
        took = (time.perf_counter() - began[0]) * 1000
        if took < 2:
            return
        cpu = (time.thread_time() - began[1]) * 1000
        _line(out, f"gc gen {info['generation']} {took:.1f} ms ({cpu:.1f} ms CPU), "
                   f"{info['collected']} collected")
        if info["generation"] == 2 and took >= 20 and not told:
            told.append(1)  # once: what the collection walked, by type
            kinds = Counter(type(o).__name__ for o in gc.get_objects(2))
            _line(out, f"  {sum(kinds.values())} in gen 2, frozen {gc.get_freeze_count()}: "
                       f"{kinds.most_common(10)}")

    gc.callbacks.append(timed)


def _loop_passes(out: IO[str]) -> None:
    from web.runtime import loops

    run = loops.Loop.run

    def timed_run(loop: Any) -> None:
        step = loop.step

        def timed_step() -> object:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return step()
            finally:
                if (took := (time.perf_counter() - wall) * 1000) >= 5:
                    _line(out, f"pass {loop.name} {took:.1f} ms "
                               f"({(time.thread_time() - cpu) * 1000:.1f} ms CPU)")

        loop.step = timed_step
        run(loop)

    loops.Loop.run = timed_run


class TimedLock:
    """An RLock that writes each hold of 5 ms or more, with where it was let go."""

    def __init__(self, name: str, out: IO[str]) -> None:
        self.name, self.out = name, out
        self.lock, self.depth, self.since, self.cpu = threading.RLock(), 0, 0.0, 0.0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.depth += 1  # only the holder counts
        if self.depth == 1:
            self.since, self.cpu = time.perf_counter(), time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if not self.depth and (held := (time.perf_counter() - self.since) * 1000) >= 5:
            where = " < ".join(f"{f.name}:{f.lineno}"
                               for f in reversed(traceback.extract_stack(limit=6)[:-1]))
            cpu = (time.thread_time() - self.cpu) * 1000
            _line(self.out, f"held {self.name} {held:.1f} ms ({cpu:.1f} ms CPU) "
                            f"[{threading.current_thread().name}] {where}")
        self.lock.release()

    def acquire(self) -> None:
        self.__enter__()

    def release(self) -> None:
        self.__exit__()


def _locks(out: IO[str]) -> None:
    from marketplace import database, market

    made, built = database.Database.__init__, market.Market.__init__

    def timed_store(db: Any, *args: Any, **kwargs: Any) -> None:
        made(db, *args, **kwargs)
        db._lock = TimedLock("store", out)

    def timed_market(m: Any, *args: Any, **kwargs: Any) -> None:
        built(m, *args, **kwargs)
        m._lock = m.auctions._lock = TimedLock("market", out)

    database.Database.__init__ = timed_store
    commit = database.Database._commit

    def timed_commit(db: Any) -> None:  # a COMMIT's fsync is a wait of its own
        wall = time.perf_counter()
        commit(db)
        if (took := (time.perf_counter() - wall) * 1000) >= 2:
            _line(out, f"commit {took:.1f} ms")

    database.Database._commit = timed_commit
    if os.environ.get("BENCH_DIAG_SYNC"):  # an experiment: the COMMITs' fsync set aside
        from marketplace import dialect

        connect = dialect.SQLite.connect

        def synced(d: Any) -> Any:
            db = connect(d)
            db.execute(f"PRAGMA synchronous={os.environ['BENCH_DIAG_SYNC']}")
            return db

        dialect.SQLite.connect = synced
    market.Market.__init__ = timed_market


def _stalls(out: IO[str]) -> None:
    while True:
        before = time.perf_counter()
        time.sleep(0.001)
        if (late := (time.perf_counter() - before) * 1000 - 1) >= 15:
            _line(out, f"stall {late:.1f} ms")
