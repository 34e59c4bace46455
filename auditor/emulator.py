"""The embedded AWS emulator: a moto server on a free loopback port inside this process."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

_lock = threading.Lock()
_server: Any = None
_url: str | None = None

# moto answers for any credentials; these fake ones keep botocore from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def embedded_endpoint() -> str:
    """Start the emulator once per process and return its URL."""
    global _server, _url
    with _lock:
        if _url is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line a request is noise here

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _server, _url = server, f"http://{host}:{port}"
        return _url


def use_fake_credentials_if_none() -> None:
    """On an emulator, the operator may have no AWS credentials at all; give botocore fake ones."""
    if not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
        os.environ.update(FAKE_CREDENTIALS)


def resolve_endpoint(endpoint_url: str | None) -> str | None:
    """ "embedded" -> the in-process emulator's URL; a URL stays; None means real AWS."""
    if endpoint_url == "embedded":
        use_fake_credentials_if_none()
        return embedded_endpoint()
    if endpoint_url:
        use_fake_credentials_if_none()
    return endpoint_url
