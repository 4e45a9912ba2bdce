"""A real HTTP server on loopback for the tests that talk to one (an upstream model, a
dataset origin, a provider's API)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def http_serving(handler: Callable[..., BaseHTTPRequestHandler] | type[Any]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yields the base URL (no trailing
    slash). The server is shut down and its thread joined on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
