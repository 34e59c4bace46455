"""The embedded AWS emulator: a moto server on a free loopback port, owned by whoever started it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

# moto answers for any credentials; these fake ones keep botocore from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class EmbeddedEmulator:
    """A moto server in this process, from construction until close()."""

    def __init__(self) -> None:
        # moto takes a second to import, and only this optional emulator needs it: not every command.
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line a request is noise here
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def close(self) -> None:
        self._server.stop()


def operator_has_credentials(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the operator configured AWS credentials of their own (an emulator accepts fake ones)."""
    return bool(environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE"))
