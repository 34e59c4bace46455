"""botocore's requests through libcurl (auditor/aws/curl_http.py): the same answers and the same errors as
through botocore's own urllib3 session, so that its parsing and its retries work unchanged."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import URLLib3Session

from auditor.aws.accounts import AccountSessions, client_settings
from auditor.aws.curl_http import CurlSession, curl_session_for
from auditor.domain.config import AccountAccess, AwsSettings

ACCESS = AccountAccess(
    "111111111111", role_arn="arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"
)
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'


@pytest.fixture
def sessions(moto_server: str) -> Iterator[AccountSessions]:
    made = AccountSessions(
        client_settings(AwsSettings(endpoint_url=moto_server), "us-east-1", 4, moto_server)
    )
    yield made
    made.close()


@pytest.mark.server
def test_the_account_clients_send_through_libcurl_and_read_every_kind_of_answer(
    sessions: AccountSessions,
) -> None:
    iam, lambda_, s3 = (sessions.client(ACCESS, service) for service in ("iam", "lambda", "s3"))
    assert all(isinstance(client._endpoint.http_session, CurlSession) for client in (iam, lambda_, s3))
    iam.create_role(RoleName="CurlRole", AssumeRolePolicyDocument=TRUST)  # a query POST, XML back
    role = iam.get_role(RoleName="CurlRole")["Role"]
    assert role["RoleName"] == "CurlRole" and role["CreateDate"].tzinfo is not None
    s3.create_bucket(Bucket="curl-bucket")  # a REST PUT
    s3.put_object(Bucket="curl-bucket", Key="k", Body=b"body bytes")
    assert s3.get_object(Bucket="curl-bucket", Key="k")["Body"].read() == b"body bytes"  # streamed
    assert s3.head_object(Bucket="curl-bucket", Key="k")["ContentLength"] == len(b"body bytes")
    s3.delete_object(Bucket="curl-bucket", Key="k")  # a DELETE without a body
    with pytest.raises(ClientError) as missing:  # a JSON error, its code from the headers and body
        lambda_.get_function(FunctionName="no-such-function")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_proxy_from_the_environment_keeps_botocore_s_own_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    client = botocore.session.get_session().create_client("iam", region_name="us-east-1")
    own = client._endpoint.http_session
    assert isinstance(own, URLLib3Session)
    assert curl_session_for(own, client.meta.config) is None
    monkeypatch.delenv("HTTPS_PROXY")
    direct = botocore.session.get_session().create_client("iam", region_name="us-east-1")
    assert isinstance(curl_session_for(direct._endpoint.http_session, direct.meta.config), CurlSession)


def get(session: CurlSession, url: str) -> Any:
    return session.send(AWSRequest(method="GET", url=url, headers={"X-Test": "yes"}).prepare())


@contextmanager
def serving(handle: Any, *, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A loopback server whose every connection `handle(socket)` answers (or not)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                with connection, contextlib.suppress(OSError):  # a client that gave up (ssl.SSLError too)
                    handle(tls.wrap_socket(connection, server_side=True) if tls else connection)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        scheme = "https" if tls else "http"
        try:
            yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/"
        finally:
            stop.set()
            listener.close()


def quick(verify: bool | str = True) -> CurlSession:
    return CurlSession(verify=verify, connect_timeout=2, read_timeout=1)


def test_a_refused_connection_is_botocore_s_endpoint_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(EndpointConnectionError, match=f"127.0.0.1:{port}"):
        get(quick(), f"http://127.0.0.1:{port}/")


def test_a_connection_closed_without_an_answer_is_connection_closed() -> None:
    with serving(lambda connection: connection.recv(65536)) as url, pytest.raises(ConnectionClosedError):
        get(quick(), url)


def test_an_answer_that_never_comes_is_a_read_timeout() -> None:
    release = threading.Event()
    with serving(lambda connection: release.wait(10)) as url:
        try:
            with pytest.raises(ReadTimeoutError):
                get(quick(), url)
        finally:
            release.set()


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"header {self.headers.get('X-Test')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Twice", "one")
        self.send_header("X-Twice", "two")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_answer_has_its_status_headers_and_body() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        response = get(quick(), f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200 and response.content == b"header yes"
    assert response.headers["x-twice"] == "one, two"  # repeated headers joined, as urllib3 does


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "cert.pem", folder / "key.pem"


def answer_ok(connection: socket.socket) -> None:
    connection.recv(65536)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def test_a_certificate_that_the_bundle_does_not_vouch_for_is_an_ssl_error_and_one_it_does_is_trusted(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with serving(answer_ok, tls=tls) as url:
        with pytest.raises(SSLError):
            get(quick(verify=True), url)  # the default bundle: not ours
        assert get(quick(verify=str(cert)), url).content == b"ok"  # AWS_CA_BUNDLE's way
        assert get(quick(verify=False), url).content == b"ok"  # --no-verify-ssl's way


def test_the_bundle_botocore_would_use_is_the_one_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    client = botocore.session.get_session().create_client(
        "iam", region_name="us-east-1", config=Config(connect_timeout=3, read_timeout=7)
    )
    session = curl_session_for(client._endpoint.http_session, client.meta.config)
    assert isinstance(session, CurlSession)
    assert (session._verify, session._connect_timeout, session._read_timeout) == (str(bundle), 3, 7)
