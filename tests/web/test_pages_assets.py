"""What the pages cost to load: each view fetches only what it uses (Chart.js with the Grid
view, the Socket.IO client with views of live data), and the portal sends its static files
and page shell gzip-compressed to a browser that accepts it, plain to one that does not."""

from __future__ import annotations

import gzip
import os

import pytest

from tests.common import page_login

CHART = "/static/vendor/chart.umd.min.js"
SOCKET_IO = "/static/vendor/socket.io.min.js"


def fetched(urls: list[str], path: str) -> bool:
    return any(url.split("?")[0].endswith(path) for url in urls)


@pytest.mark.browser
def test_market_fetches_no_chart_library_until_grid_is_opened(server, browser, runtime):
    urls: list[str] = []
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("request", lambda r: urls.append(r.url))

    page.goto(f"{server}/login")
    page.wait_for_selector("#account-pick option >> nth=1", state="attached")
    assert not fetched(urls, CHART) and not fetched(urls, SOCKET_IO)  # logged out: neither

    page_login(page, server, "carol", "carol-demo", path="/market")
    page.wait_for_selector("#view-market:not([hidden])")
    page.wait_for_function("gridbid.session.sockets.market.socket?.connected === true")
    assert fetched(urls, SOCKET_IO)  # the market is live
    assert not fetched(urls, CHART)
    assert page.evaluate("typeof Chart") == "undefined"

    page.click("nav a[data-route=grid]")
    page.wait_for_function("Number(document.body.dataset.samples || 0) >= 2", timeout=20_000)
    assert fetched(urls, CHART)
    assert page.evaluate("Chart.getChart('chart-power').data.datasets.length") == 3  # 3 meters
    assert sum(fetched([u], CHART) for u in urls) == 1  # loaded once, however often shown
    page.click("nav a[data-route=market]")
    page.click("nav a[data-route=grid]")
    page.wait_for_selector("#view-grid:not([hidden])")
    assert sum(fetched([u], CHART) for u in urls) == 1
    page.context.close()


@pytest.mark.browser
def test_admin_view_fetches_neither_live_client_nor_charts(server, browser, runtime):
    urls: list[str] = []
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("request", lambda r: urls.append(r.url))
    page_login(page, server, "admin", runtime.admin_accounts[0]["passphrase"])
    page.wait_for_selector("#view-admin:not([hidden])")
    page.wait_for_selector("#boards tbody tr", state="attached")
    assert not fetched(urls, CHART) and not fetched(urls, SOCKET_IO)
    page.context.close()


@pytest.fixture(scope="module")
def shell_app(tmp_path_factory):
    """The portal's Flask app with no runtime started: it serves static files and shells."""
    from web import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "test", "CHAIN_URI": "embedded://",
                       "DATA_DIR": str(tmp_path_factory.mktemp("shell") / "var")})


@pytest.mark.parametrize("path", ["/static/app.js", "/static/gridbid.css", CHART, "/login"])
def test_gzip_when_accepted_and_the_same_bytes_decompressed(shell_app, path):
    client = shell_app.test_client()
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    packed = client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.status_code == 200
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data)
    body = gzip.decompress(packed.data)
    if path == "/login":  # the shell carries a fresh CSRF token per session: same length
        assert len(body) == len(plain.data) and body.startswith(b"<!doctype html>")
    else:
        assert body == plain.data


def test_no_gzip_when_refused_or_not_asked(shell_app):
    client = shell_app.test_client()
    for header in (None, "gzip;q=0", "br", "*;q=0, identity"):
        headers = {"Accept-Encoding": header} if header else {}
        answer = client.get("/static/app.js", headers=headers)
        assert "Content-Encoding" not in answer.headers, header
        assert answer.data.startswith(b"/*")


def test_a_stale_twin_is_never_sent(tmp_path):
    from web.compress import StaticGzip, precompress

    source = tmp_path / "view.js"
    source.write_text("let a = 1;\n" * 100)
    assert precompress(tmp_path) == [tmp_path / "view.js.gz"]
    assert gzip.decompress(StaticGzip().bytes_of(source)) == source.read_bytes()
    source.write_text("let b = 2;\n" * 100)  # edited after install: the twin is older
    twin = tmp_path / "view.js.gz"
    os.utime(twin, ns=(source.stat().st_mtime_ns - 10**9,) * 2)
    assert gzip.decompress(StaticGzip().bytes_of(source)) == source.read_bytes()
    assert precompress(tmp_path) == [twin]  # the next install step writes it anew
    assert gzip.decompress(twin.read_bytes()) == source.read_bytes()


def test_nginx_passes_the_portals_gzip_through(shell_app, tmp_path):
    """Debian's nginx with deploy/nginx/gridbid-proxy.conf: the portal's gzip reaches the
    client as sent (nginx's own gzip stays off), plain for a client that does not ask."""
    import threading
    from pathlib import Path

    import requests
    from werkzeug.serving import make_server

    from tests.services import NginxServer

    proxy = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "gridbid-proxy.conf"
    http = make_server("127.0.0.1", 0, shell_app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    nginx = None
    try:
        nginx = NginxServer(tmp_path, f"""
            upstream gridbid {{ server 127.0.0.1:{http.server_port}; }}
            server {{ listen 127.0.0.1:PORT; include {proxy}; }}""")
        url = f"{nginx.url}/static/app.js"
        packed = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True)
        raw = packed.raw.read(decode_content=False)
        plain = requests.get(url, headers={"Accept-Encoding": "identity"})
        assert packed.headers["Content-Encoding"] == "gzip"
        assert "Content-Encoding" not in plain.headers
        assert gzip.decompress(raw) == plain.content
        assert len(raw) < len(plain.content) / 2
    finally:
        if nginx is not None:
            nginx.stop()
        http.shutdown()
