"""A small HTTP receiver for Apprise's `json://` notifications, started by the tests that need one."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    """Records every POST; answers the scripted status codes first, then 200; may hold requests open."""

    port: int = 0
    statuses: list[int] = field(default_factory=list)
    received: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    all: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    hold: bool = False

    def url(self, path: str = "hook", secret: str = "") -> str:
        credentials = f"hook:{secret}@" if secret else ""
        return f"json://{credentials}127.0.0.1:{self.port}/{path}"

    def next(self, timeout: float) -> dict[str, Any]:
        return self.received.get(timeout=timeout)


@contextmanager
def running_receiver(**settings: Any) -> Iterator[Receiver]:
    receiver = Receiver(**settings)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with lock:
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            if receiver.hold:
                receiver.holding.set()
                receiver.release.wait(30)
            if status == 200:
                receiver.all.append(body)
                receiver.received.put(body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
