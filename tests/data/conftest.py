"""A throw-away HTTP server on 127.0.0.1 for the download tests: ``http_server.add(path, body)``
serves bytes; ``short=True`` announces the full Content-Length but closes after half the body.
Every test here gets its own empty cache folder ($SCRATCHNET_CACHE) for the record of checked files."""
import http.server
import socket
import threading

import pytest


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        body, short = route
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if short else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep the test output quiet
        pass


class _Server:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.routes, self.httpd.hits = {}, []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def add(self, path, body, *, short=False):
        self.httpd.routes[path] = (body, short)
        return self.url + path

    @property
    def hits(self):
        return self.httpd.hits

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """A fresh $SCRATCHNET_CACHE per test, outside the test's tmp_path (which often is a data root)."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SCRATCHNET_CACHE", str(cache))
    return cache


@pytest.fixture
def http_server():
    server = _Server()
    yield server
    server.close()


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 whose port nobody listens on: connecting is refused, as when offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
