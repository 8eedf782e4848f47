"""gzip for what the portal sends a browser: static JS/CSS/SVG/maps and the page shell.

Static files are sent from a `.gz` twin written at asset install time (`make deps` runs
`web.compress.main`, the same files nginx's `gzip_static` would use); a twin
older than its file is never sent, the file is compressed once in memory instead, so an edited
source cannot be answered by a stale twin. The page shell is compressed per response: it holds
the session's CSRF token but reflects nothing a request sends, so there is nothing for a
BREACH-style guess to grow against. Every compressible answer says `Vary: Accept-Encoding`.
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

from flask import Flask, Request, Response, request
from werkzeug.security import safe_join

SUFFIXES = (".js", ".css", ".html", ".svg", ".map", ".json", ".txt")
MIN_BYTES = 256  # below this gzip's header and trailer outweigh what it saves
LEVEL = 9        # static twins are made once; the shell at 6 (made per response)


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (`gzip;q=0` and `*;q=0` refuse it)."""
    if not header:
        return False
    weights: dict[str, float] = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # a malformed weight is not an acceptance
        weights[name.strip().lower()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


def compressible(name: str) -> bool:
    """Whether a file of this name is worth compressing (text formats only)."""
    return name.lower().endswith(SUFFIXES)


class StaticGzip:
    """The gzip bytes of static files: their fresh `.gz` twin, else compressed once in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[Path, tuple[int, int, bytes]] = {}  # path -> (mtime_ns, size, gzip)

    def bytes_of(self, path: Path) -> bytes | None:
        """The gzip of the file at path, or None when it is missing or too small to gain."""
        try:
            stat = path.stat()
        except OSError:
            return None
        if stat.st_size < MIN_BYTES:
            return None
        twin = path.with_name(path.name + ".gz")
        try:
            if twin.stat().st_mtime_ns >= stat.st_mtime_ns:
                return twin.read_bytes()
        except OSError:
            pass  # no twin (a source edited since install, or never installed)
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            made = self._made.get(path)
        if made is not None and made[:2] == key:
            return made[2]
        # Compressed outside the lock: two first requests may both compress, neither waits.
        data = gzip.compress(path.read_bytes(), LEVEL, mtime=0)
        with self._lock:
            self._made[path] = (*key, data)
        return data


def _gzip_answer(response: Response, data: bytes) -> None:
    response.direct_passthrough = False
    response.set_data(data)
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Content-Length"] = str(len(data))


def _static_path(app: Flask, req: Request) -> Path | None:
    filename = (req.view_args or {}).get("filename")
    if not filename or not app.static_folder or not compressible(filename):
        return None
    joined = safe_join(app.static_folder, filename)
    return Path(joined) if joined else None


def init_app(app: Flask) -> None:
    """Compress the app's static files and page shells for clients that accept gzip."""
    cache = StaticGzip()

    @app.after_request
    def compress(response: Response) -> Response:
        static = request.endpoint == "static"
        page = response.mimetype == "text/html"  # the shell (every view's route answers it)
        if not (static or page):
            return response
        path = _static_path(app, request) if static else None
        if static and path is None:
            return response
        response.vary.add("Accept-Encoding")
        # Only whole 200 answers: a 304 has no body, a 206 is a range of the plain bytes.
        wanted = accepts_gzip(request.headers.get("Accept-Encoding"))
        if (not wanted or response.status_code != 200 or request.range is not None
                or "Content-Encoding" in response.headers):
            return response
        if static:
            data = cache.bytes_of(path)
        else:
            body = response.get_data()
            data = gzip.compress(body, 6, mtime=0) if len(body) >= MIN_BYTES else None
        if data is not None:
            _gzip_answer(response, data)
        return response


def precompress(directory: Path) -> list[Path]:
    """Write a `.gz` twin beside every compressible file under directory that lacks a fresh one."""
    written = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or not compressible(path.name) or path.stat().st_size < MIN_BYTES:
            continue
        twin = path.with_name(path.name + ".gz")
        if twin.exists() and twin.stat().st_mtime_ns >= path.stat().st_mtime_ns:
            continue
        twin.write_bytes(gzip.compress(path.read_bytes(), LEVEL, mtime=0))
        written.append(twin)
    return written


def main(folders: list[str]) -> None:
    """The asset install step (Makefile `deps`): precompress each folder, name what it wrote."""
    for folder in folders or ["web/static"]:
        for twin in precompress(Path(folder)):
            print(f"gzip {twin}")
