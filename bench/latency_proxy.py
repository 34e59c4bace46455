"""A loopback HTTP proxy that puts real-world latency (and, on request, faults) in front of a moto server.

    python -m bench.latency_proxy --upstream http://127.0.0.1:5000 [--delay 0.1] [--port 0]
                                  [--throttle 0.1] [--server-error 0.05] [--reset 0.02] [--slow 0.1 --slow-delay 2]

Every request waits `delay` seconds, then goes to the upstream; every client connection is served by
a thread of its own and keeps its own keep-alive connection upstream (HTTP/1.1 both ways), so
botocore's connection pool works as it does against AWS and requests in flight never wait for each
other. The faults, each on a random share of the requests (seeded, so a run can be repeated):

- `throttle`: the service's own throttling answer (IAM/STS `Throttling`, Lambda 429
  `TooManyRequestsException`, S3 503 `SlowDown`, JSON services `ThrottlingException`), never sent on;
- `server_error`: HTTP 500 `InternalFailure` (or, with `server_status` 503, `ServiceUnavailable`), never
  sent on;
- `reset`: the connection is reset (TCP RST) before the request is sent on;
- `lost_response`: the request is sent on and done, then the connection is reset, so the client never
  hears that it worked (the fault that makes non-idempotent retries interesting);
- `slow`: `slow_delay` more seconds before the answer;
- `deny`: the service's own denial (403 `AccessDenied`, Lambda's `AccessDeniedException`), never sent
  on: a cause in the lab, as IAM would answer it, to tell apart from AWS's faults.

`--fault-services sts,iam` limits the faults to requests signed for those services; `Faults.user_agent`
to requests whose User-Agent contains it (`exec-env/AWS_Lambda`: only the function's own requests).

`--replay` answers a request the proxy has forwarded before (same method, path, body, operation and
signing access key) with the upstream's first answer to it, after the same delay, without going
upstream: for the benchmarks' passes that only read an unchanged class, so that the emulator's CPU,
which on AWS is AWS's own, is not taken from the machine under test. Only successful answers are kept.

`--replay-sequence` records every answer (errors too), for each request key in the order they came, until
`POST /__proxy__/rewind`; from then on a request takes its key's next recorded answer, without going
upstream: for a benchmark's pass that writes (provisioning), which makes a first pass's requests again
in the same order for each key. A request past its key's record goes upstream and is counted as
`missed` (the benchmark requires none).

`GET /__proxy__/stats` answers the proxy's own counters (requests, faults, connections, most requests
in flight at once) as JSON, without going upstream.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

STATS_PATH = "/__proxy__/stats"
REWIND_PATH = "/__proxy__/rewind"
# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business on each side.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass
class Faults:
    """Shares (0..1) of the requests that get each fault; the first that draws applies."""

    throttle: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    lost_response: float = 0.0
    slow: float = 0.0
    slow_delay: float = 2.0
    deny: float = 0.0
    seed: int = 1
    # Paths that never get a fault (e.g. moto's own /moto-api).
    spare_prefixes: tuple[str, ...] = ("/moto-api",)
    # Only requests signed for these services get faults (empty: every service), e.g. ("sts",).
    services: tuple[str, ...] = ()
    # Only requests whose User-Agent contains this get faults (empty: every request).
    user_agent: str = ""
    # The HTTP status of a server error: 500 (InternalFailure) or 503 (ServiceUnavailable).
    server_status: int = 500

    @property
    def any(self) -> bool:
        return any((self.throttle, self.server_error, self.reset, self.lost_response, self.slow, self.deny))


@dataclass
class Stats:
    requests: int = 0
    connections: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    user_agents: dict[str, int] = field(default_factory=dict)
    replayed: int = 0
    missed: int = 0


class _Sequences:
    """Each request key's answers in the order they came; after rewind(), handed out in that order."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, ...], list[tuple[int, dict[str, str], bytes]]] = {}
        self._taken: dict[tuple[str, ...], int] | None = None  # None: still recording

    @property
    def replaying(self) -> bool:
        return self._taken is not None

    def rewind(self) -> None:
        self._taken = {}

    def add(self, key: tuple[str, ...], answer: tuple[int, dict[str, str], bytes]) -> None:
        if self._taken is None:
            self._answers.setdefault(key, []).append(answer)

    def take(self, key: tuple[str, ...]) -> tuple[int, dict[str, str], bytes] | None:
        if self._taken is None:
            return None
        taken = self._taken.get(key, 0)
        answers = self._answers.get(key, [])
        if taken >= len(answers):
            return None
        self._taken[key] = taken + 1
        return answers[taken]


class LatencyProxy:
    """The proxy, in a thread of this process (start/stop), or as its own process (main())."""

    def __init__(
        self,
        upstream: str,
        delay: float = 0.1,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record_user_agents: bool = False,
        observe: Callable[[str, str, bytes, bytes], None] | None = None,
        replay: bool = False,
        sequence: bool = False,
    ) -> None:
        """`observe(method, path, request body, response body)` sees every exchange sent upstream."""
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the upstream must be an http:// URL, not {upstream!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.delay = delay
        self.faults = faults or Faults()
        self.record_user_agents = record_user_agents
        self.observe = observe
        self.replay = replay or sequence
        self._sequences = _Sequences() if sequence else None
        self._answers: dict[tuple[str, ...], tuple[int, dict[str, str], bytes]] = {}
        self.stats = Stats()
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._server = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LatencyProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="latency-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    # ------------------------------------------------------------------------------------ bookkeeping

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(asdict(self.stats)))  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = Stats(connections=self.stats.connections)

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._random = random.Random(faults.seed)

    def _draw(self, path: str, service: str, user_agent: str = "") -> str | None:
        with self._lock:
            faults = self.faults
            if not faults.any or path.startswith(faults.spare_prefixes):
                return None
            if faults.services and service not in faults.services:
                return None
            if faults.user_agent not in user_agent:
                return None
            roll = self._random.random()
        for name in ("throttle", "server_error", "reset", "lost_response", "slow", "deny"):
            share = getattr(faults, name)
            if roll < share:
                return name
            roll -= share
        return None

    def _count(self, *, fault: str | None = None, user_agent: str = "") -> None:
        with self._lock:
            self.stats.requests += 1
            if fault:
                self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
            if self.record_user_agents and user_agent:
                self.stats.user_agents[user_agent] = self.stats.user_agents.get(user_agent, 0) + 1

    def _enter(self) -> None:
        with self._lock:
            self.stats.in_flight += 1
            self.stats.most_in_flight = max(self.stats.most_in_flight, self.stats.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.stats.in_flight -= 1

    def recorded(self, key: tuple[str, ...]) -> tuple[int, dict[str, str], bytes] | None:
        with self._lock:
            if self._sequences is not None:
                answer = self._sequences.take(key)
                if answer is None and self._sequences.replaying:
                    self.stats.missed += 1
            else:
                answer = self._answers.get(key)
            if answer is not None:
                self.stats.replayed += 1
            return answer

    def record(self, key: tuple[str, ...], answer: tuple[int, dict[str, str], bytes]) -> None:
        with self._lock:
            if self._sequences is not None:
                self._sequences.add(key, answer)
            elif answer[0] < 300:
                self._answers.setdefault(key, answer)

    def rewind(self) -> None:
        """From now on, answer each key's requests from the record, in the order they were recorded."""
        with self._lock:
            if self._sequences is None:
                raise ValueError("only a --replay-sequence proxy rewinds")
            self._sequences.rewind()

    def _connected(self) -> None:
        with self._lock:
            self.stats.connections += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a burst of new connections from 16+ workers must not be refused

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away (killed, timed out, reset): its business, not an error
        super().handle_error(request, client_address)


def _handler_for(proxy: LatencyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        owner = proxy

    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards botocore
    owner: LatencyProxy

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream: http.client.HTTPConnection | None = None
        self.owner._connected()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.upstream is not None:
                self.upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line a request is noise

    def do_GET(self) -> None:
        if self.path == STATS_PATH:
            self._answer(
                200, {"Content-Type": "application/json"}, json.dumps(self.owner.snapshot()).encode()
            )
            return
        self._forward()

    def do_POST(self) -> None:
        if self.path == REWIND_PATH:
            try:
                self.owner.rewind()
            except ValueError as error:
                self._answer(400, {"Content-Type": "text/plain"}, str(error).encode())
                return
            self._answer(204, {}, b"")
            return
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def do_PATCH(self) -> None:
        self._forward()

    # ------------------------------------------------------------------------------------ forwarding

    def _forward(self) -> None:
        owner = self.owner
        owner._enter()
        try:
            body = self._read_body()
            fault = owner._draw(
                self.path,
                _service_of(self.headers.get("Authorization", "")),
                self.headers.get("User-Agent", ""),
            )
            owner._count(fault=fault, user_agent=self.headers.get("User-Agent", ""))
            time.sleep(owner.delay)
            if fault == "reset":
                self._reset()
                return
            if fault in ("throttle", "server_error", "deny"):
                authorization = self.headers.get("Authorization", "")
                self._answer(*_fault_answer(fault, authorization, owner.faults.server_status))
                return
            if fault == "slow":
                time.sleep(owner.faults.slow_delay)
            key = self._replay_key(body) if owner.replay else None
            answer = owner.recorded(key) if key else None
            if answer is not None:
                self._answer(*_with_fresh_expiration(answer))
                return
            status, headers, payload = self._send_upstream(body)
            if key:
                owner.record(key, (status, headers, payload))
            if owner.observe is not None:
                owner.observe(self.command, self.path, body, payload)
            if fault == "lost_response":
                self._reset()
                return
            self._answer(status, headers, payload)
        finally:
            owner._leave()

    def _replay_key(self, body: bytes) -> tuple[str, ...]:
        """What makes two requests the same one: the account is the signing key's (each account's
        credentials are its own), the time and the signature are not part of it."""
        return (
            self.command,
            self.path,
            self.headers.get("X-Amz-Target", ""),
            _access_key_of(self.headers.get("Authorization", "")),
            body.decode("latin-1"),
        )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_upstream(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            connection = self._upstream()
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                # The upstream closed a kept-alive connection between two requests: once more, afresh.
                connection.close()
                self.upstream = None
                if attempt == 2:
                    raise
                continue
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            if response.will_close:
                connection.close()
                self.upstream = None
            if self.command != "HEAD":
                kept = {k: v for k, v in kept.items() if k.lower() != "content-length"}
                kept["Content-Length"] = str(len(payload))
            return response.status, kept, payload
        raise AssertionError("unreachable")

    def _upstream(self) -> http.client.HTTPConnection:
        if self.upstream is None:
            owner = self.owner
            self.upstream = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=300)
        return self.upstream

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response_only(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        self.wfile.flush()

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout: close() sends a RST, as a dropped connection looks to a client.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


_EXPIRATION = re.compile(rb"<Expiration>[^<]*</Expiration>")


def _with_fresh_expiration(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, str], bytes]:
    """A replayed AssumeRole answer expires an hour from now, as a new one from STS would: with the
    recorded expiration, botocore would refresh the credentials again at every request once that
    moment came near."""
    status, headers, payload = answer
    fresh = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)).encode()
    renewed, renewals = _EXPIRATION.subn(b"<Expiration>" + fresh + b"</Expiration>", payload)
    if not renewals:
        return answer
    return status, {**headers, "Content-Length": str(len(renewed))}, renewed


def _credential_scope(authorization: str) -> list[str]:
    """The parts of a SigV4 Authorization header's Credential=AKID/date/region/SERVICE/aws4_request."""
    _, _, credential = authorization.partition("Credential=")
    return credential.split(",", 1)[0].split("/")


def _access_key_of(authorization: str) -> str:
    return _credential_scope(authorization)[0]


def _service_of(authorization: str) -> str:
    parts = _credential_scope(authorization)
    return parts[3] if len(parts) > 3 else ""


def _fault_answer(
    fault: str, authorization: str, server_status: int = 500
) -> tuple[int, dict[str, str], bytes]:
    """The answer the service itself gives when it throttles, fails or denies, in its own protocol."""
    service = _service_of(authorization)
    if fault == "deny":
        code, message, status = "AccessDenied", "User is not authorized to perform this action", 403
        if service == "lambda":
            code = "AccessDeniedException"
        elif service not in ("iam", "sts", "sqs", "s3"):
            code, status = "AccessDeniedException", 400
    elif fault == "server_error" and server_status == 503:
        code, message, status = "ServiceUnavailable", "Service Unavailable", 503
    elif fault == "server_error":
        code, message, status = "InternalFailure", "We encountered an internal error. Please try again.", 500
    elif service == "lambda":
        code, message, status = "TooManyRequestsException", "Rate exceeded", 429
    elif service == "s3":
        code, message, status = "SlowDown", "Please reduce your request rate.", 503
    else:
        code, message, status = (
            ("Throttling" if service in ("iam", "sts") else "ThrottlingException"),
            "Rate exceeded",
            400,
        )
    if service in ("iam", "sts", "sqs"):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>latency-proxy</RequestId></ErrorResponse>"
        )
        return status, {"Content-Type": "text/xml"}, body.encode()
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>latency-proxy</RequestId></Error>"
        return status, {"Content-Type": "application/xml"}, body.encode()
    if service == "lambda":
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
        return status, headers, json.dumps({"Type": "User", "message": message}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    return status, headers, json.dumps({"__type": code, "message": message}).encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", required=True, help="the moto server, e.g. http://127.0.0.1:5000")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds added to every request (0.1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed at start)")
    parser.add_argument("--throttle", type=float, default=0.0)
    parser.add_argument("--server-error", type=float, default=0.0)
    parser.add_argument("--reset", type=float, default=0.0)
    parser.add_argument("--lost-response", type=float, default=0.0)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--slow-delay", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-services", default="", help="comma-separated, e.g. sts,iam (default: all)")
    parser.add_argument("--server-status", type=int, default=500, choices=(500, 503))
    parser.add_argument("--record-user-agents", action="store_true")
    parser.add_argument("--replay", action="store_true", help="answer repeated requests from the record")
    parser.add_argument(
        "--replay-sequence",
        action="store_true",
        help="record every answer; after a rewind, replay them in order",
    )
    args = parser.parse_args(argv)
    faults = Faults(
        throttle=args.throttle,
        server_error=args.server_error,
        reset=args.reset,
        lost_response=args.lost_response,
        slow=args.slow,
        slow_delay=args.slow_delay,
        seed=args.seed,
        services=tuple(name for name in args.fault_services.split(",") if name),
        server_status=args.server_status,
    )
    proxy = LatencyProxy(
        args.upstream,
        args.delay,
        faults,
        args.host,
        args.port,
        record_user_agents=args.record_user_agents,
        replay=args.replay,
        sequence=args.replay_sequence,
    )
    print(f"Listening on {proxy.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        proxy.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
