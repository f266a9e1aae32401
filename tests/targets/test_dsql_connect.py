"""What a DSQL connection really sends, checked against a local stand-in server.

The stand-in (a separate process on 127.0.0.1, so gevent in this process cannot
stall it) speaks just enough of the PostgreSQL protocol: it refuses SSL with 'N',
asks for a cleartext password (AuthenticationCleartextPassword), records it, and
lets the client in. Whatever libpq put on the wire is what DSQL would receive.
"""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import json
import logging
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors as pg_errors
import pytest
from offline_aws import ENDPOINT
from psycopg_pool import ConnectionPool

from loadgen.db.transfer import TransferRequest, run_transfer
from loadgen.model.retry import RetryPolicy
from loadgen.targets.connection import UserConnections, open_connection, pool_options
from loadgen.targets.dsql import DsqlTarget, direct_tls_supported

STANDIN = textwrap.dedent(
    r"""
    import json, os, socket, ssl, struct, sys, threading

    def recv_exact(s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def msg(kind, payload=b""):
        return kind + struct.pack("!i", len(payload) + 4) + payload

    def report(**event):
        print(json.dumps(event), flush=True)

    # Connections to refuse, in order: [stage, SQLSTATE, message]; stage "startup" or "password".
    refusals = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    refusals_lock = threading.Lock()

    def refusal(stage):
        with refusals_lock:
            if refusals and refusals[0][0] == stage:
                return refusals.pop(0)
        return None

    def refuse(s, code, text):
        fields = b"SFATAL\0VFATAL\0C" + code.encode() + b"\0M" + text.encode() + b"\0\0"
        s.sendall(msg(b"E", fields))
        report(event="refused", code=code)

    tls = None
    if os.environ.get("STANDIN_CERT"):  # speak TLS, with this certificate, as DSQL does
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(os.environ["STANDIN_CERT"], os.environ["STANDIN_KEY"])
        tls.set_alpn_protocols(["postgresql"])

    def serve(s):
        try:
            if tls is not None:
                if s.recv(1, socket.MSG_PEEK) != b"\x16":  # not direct TLS: an SSLRequest first
                    recv_exact(s, 8)
                    s.sendall(b"S")
                try:
                    s = tls.wrap_socket(s, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    report(event="tls-failed", reason=type(e).__name__)
                    return
                report(event="tls")
            while True:
                head = recv_exact(s, 8)
                if head[0] == 0x16:  # a TLS ClientHello straight away: direct TLS negotiation
                    report(event="direct-tls")
                    return
                length, code = struct.unpack("!ii", head)
                body = recv_exact(s, length - 8)
                if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest
                    report(event="sslrequest" if code == 80877103 else "gssencrequest")
                    s.sendall(b"N")
                    continue
                break
            fields = body.split(b"\0")
            params = dict(zip(fields[0::2], fields[1::2]))
            r = refusal("startup")
            if r:
                refuse(s, r[1], r[2])
                return
            s.sendall(msg(b"R", struct.pack("!i", 3)))  # AuthenticationCleartextPassword
            kind = recv_exact(s, 1)
            (length,) = struct.unpack("!i", recv_exact(s, 4))
            password = recv_exact(s, length - 4).rstrip(b"\0").decode()
            report(event="password", kind=kind.decode(), password=password,
                   user=params.get(b"user", b"").decode(), database=params.get(b"database", b"").decode(),
                   application_name=params.get(b"application_name", b"").decode())
            r = refusal("password")
            if r:
                refuse(s, r[1], r[2])
                return
            out = msg(b"R", struct.pack("!i", 0))
            for k, v in (("server_version", "17.0"), ("client_encoding", "UTF8"),
                         ("standard_conforming_strings", "on"), ("DateStyle", "ISO, MDY"),
                         ("integer_datetimes", "on")):
                out += msg(b"S", k.encode() + b"\0" + v.encode() + b"\0")
            out += msg(b"K", struct.pack("!ii", 4242, 1234)) + msg(b"Z", b"I")
            s.sendall(out)
            while True:
                kind = recv_exact(s, 1)
                (length,) = struct.unpack("!i", recv_exact(s, 4))
                recv_exact(s, length - 4)
                if kind == b"X":
                    return
                s.sendall(msg(b"I") + msg(b"Z", b"I"))  # any query: an empty result
        except (EOFError, OSError):
            pass
        finally:
            s.close()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    report(event="listening", port=listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    """
)


class StandIn:
    def __init__(self, refusals: list[list[str]] | None = None, cert: tuple[Path, Path] | None = None) -> None:
        argv = [sys.executable, "-c", STANDIN] + ([json.dumps(refusals)] if refusals else [])
        env = dict(os.environ, **({"STANDIN_CERT": str(cert[0]), "STANDIN_KEY": str(cert[1])} if cert else {}))
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        first = json.loads(self.proc.stdout.readline())
        self.port: int = first["port"]

    def next_event(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn()
    try:
        yield server
    finally:
        server.close()


def _target(standin: StandIn, **kw: Any) -> DsqlTarget:
    settings: dict[str, Any] = {"sslmode": "disable", "connect_rate": 10_000.0, "connect_burst": 1000}
    settings.update(kw)
    return DsqlTarget(ENDPOINT, "us-east-1", hostaddr="127.0.0.1", port=standin.port, **settings)


def _spy_tokens(target: DsqlTarget) -> list[str]:
    made: list[str] = []
    sign = target.tokens.token

    def token() -> str:
        made.append(sign())
        return made[-1]

    target.tokens.token = token  # type: ignore[method-assign]
    return made


def test_each_connection_sends_the_token_signed_for_it(
    standin: StandIn, fake_aws: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = _target(standin, db_user="app_rw")
    made = _spy_tokens(target)
    seen = []
    for _ in range(3):
        with open_connection(target, autocommit=True, connect_timeout=5):
            pass
        seen.append(standin.next_event())
    assert [e["event"] for e in seen] == ["password"] * 3
    assert [e["password"] for e in seen] == made, "each connection sends the token signed for it"
    assert len(made) == 3 and fake_aws["clients"] == 1
    assert all(e["kind"] == "p" and e["user"] == "app_rw" and e["database"] == "postgres" for e in seen)
    assert all("Action=DbConnect&" in p for p in made)
    assert not any(t in caplog.text for t in made), "no token in the logs"


def test_the_pool_opens_every_connection_with_a_fresh_token(
    standin: StandIn, fake_aws: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = _target(standin)
    made = _spy_tokens(target)
    options = pool_options(target, {"application_name": "loadgen-test"})
    with ConnectionPool(target.conninfo(), min_size=0, max_size=3, open=True, timeout=10, **options) as pool:
        conns = [pool.getconn() for _ in range(3)]
        for c in conns:
            pool.putconn(c)
    seen = [standin.next_event() for _ in range(3)]
    assert sorted(e["password"] for e in seen) == sorted(made)
    assert len(made) == 3 and all("Action=DbConnectAdmin&" in p for p in made)
    assert all(e["application_name"] == "loadgen-test" for e in seen), "the pool's own kwargs still apply"
    assert not any(t in caplog.text for t in made)


@pytest.mark.skipif(not direct_tls_supported(), reason="libpq < 17 has no direct TLS negotiation")
def test_require_opens_tls_directly_and_never_sends_the_password_in_clear(standin: StandIn, fake_aws: dict[str, int]) -> None:
    target = _target(standin, sslmode="require")
    with pytest.raises(psycopg.OperationalError):
        open_connection(target, connect_timeout=5)
    assert standin.next_event() == {"event": "direct-tls"}


def test_connection_limit_errors_are_retried_after_a_pause(conn: psycopg.Connection[Any], embedded: Any) -> None:
    """53300/53400 on connect: a connection_error attempt, a backoff, then a normal commit."""
    from loadgen.db.schema import reset

    reset(conn, 10, 100)
    refusals = [pg_errors.lookup("53400")("connection rate exceeded"), pg_errors.lookup("53300")("too many connections")]
    opened: list[psycopg.Connection[Any]] = []

    def getconn() -> psycopg.Connection[Any]:
        if refusals:
            raise refusals.pop(0)
        opened.append(psycopg.connect(embedded.conninfo))
        return opened[-1]

    rows: list[tuple] = []
    result = run_transfer(TransferRequest.new(1, 2, 1), getconn, lambda c: c.close(), RetryPolicy(), random.Random(1), rows.append)
    assert result.outcome == "committed" and result.attempts == 3
    assert [(r[4], r[5]) for r in rows] == [("connection_error", "53400"), ("connection_error", "53300"), ("committed", None)]
    assert rows[1][10] > 0 and rows[2][10] > rows[1][10], "backoff grows between connection errors"


# DSQL's texts (user guide: quotas; troubleshooting), sent as a real server sends them.
TOO_MANY = ["startup", "53300", "unable to accept connection, too many open connections"]
RATE = ["startup", "53400", "unable to accept connection, rate exceeded"]
IAM_FAILED = ["password", "28000", 'IAM authentication failed for user "admin"']


def _nothing(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any) -> None:
    """An attempt that only needs its connection (the stand-in runs no SQL)."""


def test_refused_connections_reach_the_retry_loop_with_their_sqlstate(fake_aws: dict[str, int]) -> None:
    """53400 then 53300 from the server while connecting: two connection_error attempts with
    their SQLSTATEs (libpq keeps only the text; loadgen recovers the code), a growing pause,
    then the attempt that connects; never a PoolTimeout 30 s later."""
    server = StandIn([RATE, TOO_MANY])
    try:
        target = _target(server)
        connections = UserConnections(target, {"application_name": "loadgen"})
        slot = connections.for_user()
        rows: list[tuple] = []
        naps: list[float] = []
        result = run_transfer(
            TransferRequest.new(1, 2, 1), slot.getconn, slot.putconn, RetryPolicy(), random.Random(1), rows.append, _nothing, naps.append
        )
        assert [server.next_event()["event"] for _ in range(3)] == ["refused", "refused", "password"]
        assert result.outcome == "committed" and result.attempts == 3
        assert [(r[4], r[5]) for r in rows] == [("connection_error", "53400"), ("connection_error", "53300"), ("committed", None)]
        assert len(naps) == 2 and naps[1] > naps[0] > 0, "backoff grows between refusals"
        stats = connections.close()
        assert stats["connect_errors"] == 2 and stats["opened"] == 1 and stats["peak_open"] == 1
        assert connections.refused is None, "a connection limit is worth retrying"
    finally:
        server.close()


def test_refused_credentials_end_the_run_in_one_line(fake_aws: dict[str, int]) -> None:
    """DSQL refuses the token (an expired role, say): the attempt is an error (28000), not retried,
    and the connections say why no connection will open, for the run to end on."""
    server = StandIn([IAM_FAILED])
    try:
        connections = UserConnections(_target(server))
        slot = connections.for_user()
        rows: list[tuple] = []
        result = run_transfer(
            TransferRequest.new(1, 2, 1), slot.getconn, slot.putconn, RetryPolicy(), random.Random(1), rows.append, _nothing
        )
        assert (result.outcome, result.attempts, result.sqlstate) == ("error", 1, "28000")
        reason = connections.refused
        assert reason is not None and "28000" in reason and "IAM authentication failed" in reason and "expired" in reason
        assert "\n" not in reason and "X-Amz" not in reason
    finally:
        server.close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for the cluster's host name that no public CA signed: an impostor's."""
    cert, key = tmp_path / "impostor.pem", tmp_path / "impostor.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={ENDPOINT}",
         "-addext", f"subjectAltName=DNS:{ENDPOINT}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_verify_full_is_the_default_and_keeps_the_token_from_an_impostor(fake_aws: dict[str, int], tmp_path: Path) -> None:
    """A server with a certificate no trusted root vouches for: the default (verify-full against
    certifi's roots) stops before any password is sent; --sslmode require would hand it the token."""
    cert, key = _self_signed(tmp_path)
    server = StandIn(cert=(cert, key))
    try:
        default = _target(server, sslmode="verify-full")
        assert (DsqlTarget(ENDPOINT, "us-east-1").sslmode, default.sslrootcert) == ("verify-full", "certifi")  # what a user gets unasked
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            open_connection(default, connect_timeout=5)
        assert server.next_event() == {"event": "tls-failed", "reason": "SSLError"}
        relaxed = _target(server, sslmode="require")
        made = _spy_tokens(relaxed)
        with open_connection(relaxed, autocommit=True, connect_timeout=5):
            pass
        assert server.next_event() == {"event": "tls"}
        assert server.next_event()["password"] == made[0], "require: the impostor got a valid token"
        trusted = _target(server, sslmode="verify-full", sslrootcert=str(cert))  # a CA bundle that does vouch for it
        with open_connection(trusted, autocommit=True, connect_timeout=5):
            pass
        assert [server.next_event()["event"] for _ in range(2)] == ["tls", "password"]
    finally:
        server.close()


#: What a user's machine lacks and this one exports: libpq's bundled OpenSSL must not need them.
SSL_ENVIRONMENT = ("SSL_CERT_FILE", "SSL_CERT_DIR", "PGSSLROOTCERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _ca_signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for the cluster's host name that it signed: (CA, certificate, key)."""
    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca.key"
    cert, key, csr = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "server.csr"
    ext = tmp_path / "san.ext"
    ext.write_text(f"subjectAltName=DNS:{ENDPOINT}\n")
    for argv in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=loadgen test root",
         "-keyout", str(ca_key), "-out", str(ca)],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ENDPOINT}", "-keyout", str(key), "-out", str(csr)],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "1",
         "-extfile", str(ext), "-out", str(cert)],
    ):  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True)
    return ca, cert, key


def test_the_default_roots_hold_amazons_and_need_no_ssl_environment(
    fake_aws: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SSL_CERT_FILE and friends unset, as on a user's machine, the default verify-full
    checks the server against certifi's bundle: a server whose CA is in that bundle gets the
    TLS handshake and then the token; a self-signed one gets neither (the test above)."""
    for name in SSL_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    import ssl

    import certifi

    real = ssl.create_default_context(cafile=certifi.where()).get_ca_certs()
    names = {v for cert in real for rdn in cert["subject"] for k, v in rdn if k == "commonName"}
    assert {f"Amazon Root CA {i}" for i in range(1, 5)} <= names, "DSQL's certificates chain to Amazon's roots"

    ca, cert, key = _ca_signed(tmp_path)
    store = tmp_path / "store.pem"  # certifi's bundle with one more root, placed there for this test
    store.write_text(Path(certifi.where()).read_text() + ca.read_text())
    monkeypatch.setattr(certifi, "where", lambda: str(store))
    server = StandIn(cert=(cert, key))
    try:
        target = _target(server, sslmode="verify-full")  # no --sslrootcert: the default
        assert psycopg.conninfo.conninfo_to_dict(target.conninfo())["sslrootcert"] == str(store)
        made = _spy_tokens(target)
        with open_connection(target, autocommit=True, connect_timeout=5):
            pass
        handshake, login = server.next_event(), server.next_event()
        assert handshake == {"event": "tls"} and login["event"] == "password"
        assert login["password"] == made[0], "the token reached the server the trusted root vouches for"
    finally:
        server.close()
