"""botocore's requests sent by libcurl (pycurl), in place of its urllib3 session.

A request through urllib3 and `http.client` spends Python on building the request, the pool's queue
and parsing the headers through the `email` package; libcurl does the same in C, without the
interpreter's lock. A fresh audit of 200 labs at concurrency 64 took 9.6 s of CPU against 13.2 s, and
11.4 s against 12.2 s in another run (bench/clients_bench.py, the answers replayed).

It stands in for `botocore.httpsession.URLLib3Session` where that session has no proxy and no client
certificate (the auditor configures neither; a proxy from the environment keeps botocore's own
session), with the same certificate verification and the same errors, so that botocore's retries see
what they see from urllib3. Each thread has its own curl handle, which keeps its own connections.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import get_cert_path

try:
    import pycurl
except ImportError:  # pragma: no cover -- a requirement; without it botocore's own session serves
    pycurl = None

# libcurl's errors, as botocore's. Others are an HTTPClientError, which botocore retries too.
_CONNECT_ERRORS = frozenset({6, 7})  # could not resolve the host, could not connect
_TLS_ERRORS = frozenset({35, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})
_CLOSED_ERRORS = frozenset({18, 52, 55, 56})  # partial answer, none, send and receive errors
_TIMED_OUT = 28


class RawBody(io.BytesIO):
    """The answer's body, read in full, as botocore reads a urllib3 response (`stream`, `read`)."""

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt or -1):
            yield chunk


class CurlSession:
    """What botocore's endpoint calls on its HTTP session: `send` and `close`."""

    def __init__(self, *, verify: bool | str, connect_timeout: float, read_timeout: float) -> None:
        self._verify = verify
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._local = threading.local()

    def send(self, request: AWSPreparedRequest) -> AWSResponse:
        curl = self._handle()
        headers: dict[str, str] = {}
        body = RawBody()
        self._prepare(curl, request, headers, body)
        try:
            curl.perform()
        except pycurl.error as error:
            raise _botocore_error(error, curl, request) from None
        body.seek(0)
        return AWSResponse(request.url, curl.getinfo(pycurl.RESPONSE_CODE), headers, body)

    def close(self) -> None:
        """Each thread's handle closes with the thread; nothing is kept for the session as a whole."""

    def _handle(self) -> Any:
        """This thread's handle (a process forked from this one makes its own: a handle's connections
        are the parent's sockets)."""
        made = getattr(self._local, "made", None)
        if made is None or made[0] != os.getpid():
            made = self._local.made = (os.getpid(), pycurl.Curl())
        return made[1]

    def _prepare(
        self, curl: Any, request: AWSPreparedRequest, headers: dict[str, str], body: RawBody
    ) -> None:
        curl.reset()  # every option back to libcurl's default; the connections stay
        curl.setopt(pycurl.URL, request.url)
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.NOPROXY, "*")  # the caller keeps botocore's session where there is a proxy
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self._connect_timeout * 1000)))
        # botocore's read timeout is the longest wait for a byte; libcurl's nearest is a speed limit,
        # in whole seconds (a read timeout under a second waits a second).
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(_read_timeout(request, self._read_timeout))))
        self._verify_certificates(curl)
        _set_method_and_body(curl, request)
        curl.setopt(pycurl.HTTPHEADER, _header_lines(request.headers))
        curl.setopt(pycurl.WRITEFUNCTION, body.write)
        curl.setopt(pycurl.HEADERFUNCTION, _header_collector(headers))

    def _verify_certificates(self, curl: Any) -> None:
        if self._verify is False:
            curl.setopt(pycurl.SSL_VERIFYPEER, 0)
            curl.setopt(pycurl.SSL_VERIFYHOST, 0)
        else:
            curl.setopt(pycurl.CAINFO, get_cert_path(self._verify))


def proxies_of(http_session: Any) -> dict[str, str] | None:
    """The proxies botocore resolved for its session's endpoint: the configuration's, or the
    environment's where the endpoint is not in NO_PROXY (None if botocore keeps them elsewhere)."""
    return getattr(getattr(http_session, "_proxy_config", None), "_proxies", None)


def curl_session_for(http_session: Any, config: Any) -> CurlSession | None:
    """A CurlSession in place of botocore's `http_session` made with botocore's `config`, or None where
    it would not do the same: pycurl missing, a proxy (from the configuration or the environment), a
    client certificate, TCP keep-alive."""
    proxies = proxies_of(http_session)
    verify = getattr(http_session, "_verify", None)
    if pycurl is None or proxies is None or proxies or verify is None:
        return None
    if config.client_cert or config.proxies_config or config.tcp_keepalive:
        return None
    return CurlSession(
        verify=verify, connect_timeout=config.connect_timeout, read_timeout=config.read_timeout
    )


def _read_timeout(request: AWSPreparedRequest, default: float) -> float:
    context = getattr(request, "context", None) or {}
    timeout = context.get("read_timeout")
    return float(timeout) if timeout is not None else default


def _set_method_and_body(curl: Any, request: AWSPreparedRequest) -> None:
    payload = _payload(request.body)
    if request.method == "HEAD":
        curl.setopt(pycurl.NOBODY, 1)
    elif request.method == "GET" and not payload:
        curl.setopt(pycurl.HTTPGET, 1)
    else:
        curl.setopt(pycurl.CUSTOMREQUEST, request.method)
        curl.setopt(pycurl.POSTFIELDSIZE, len(payload))
        curl.setopt(pycurl.COPYPOSTFIELDS, payload)


def _payload(body: Any) -> bytes:
    """The request's body as bytes (botocore rewinds a stream before it retries)."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    return bytes(body.read())


def _header_lines(headers: Mapping[str, Any]) -> list[str]:
    lines = [
        f"{name}: {value.decode() if isinstance(value, bytes) else value}" for name, value in headers.items()
    ]
    # No "Expect: 100-continue" round trip; no "Accept" nor form "Content-Type" that botocore did not set.
    unset = [f"{name}:" for name in ("Expect", "Accept", "Content-Type") if name not in headers]
    return [*lines, *unset]


def _header_collector(headers: dict[str, str]) -> Any:
    """libcurl gives each header line of each answer (a `100 Continue` first, maybe); the last answer's
    are kept. Repeated headers are joined, as urllib3 does."""

    def collect(line: bytes) -> None:
        text = line.decode("iso-8859-1")
        if text.startswith("HTTP/"):
            headers.clear()
            return
        name, colon, value = text.partition(":")
        if colon:
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value

    return collect


def _botocore_error(error: Any, curl: Any, request: AWSPreparedRequest) -> Exception:
    code = error.args[0]
    url = request.url
    if code in _CONNECT_ERRORS:
        return EndpointConnectionError(endpoint_url=url, error=error)
    if code == _TIMED_OUT:
        connected = curl.getinfo(pycurl.CONNECT_TIME) > 0
        return (
            ReadTimeoutError(endpoint_url=url, error=error)
            if connected
            else ConnectTimeoutError(endpoint_url=url, error=error)
        )
    if code in _TLS_ERRORS:
        return SSLError(endpoint_url=url, error=error)
    if code in _CLOSED_ERRORS:
        return ConnectionClosedError(error=error, request=request, endpoint_url=url)
    return HTTPClientError(error=error)
