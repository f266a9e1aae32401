"""The DSQL target offline: endpoints, IAM tokens, TLS settings, pacing, no secrets out, error classes."""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import time
from urllib.parse import parse_qs, urlsplit

import certifi
import psycopg
import psycopg.errors as pg_errors
import pytest
from offline_aws import ENDPOINT, FAKE_KEY

from loadgen.db.classify import classify
from loadgen.errors import ConfigError
from loadgen.targets.connection import pool_options
from loadgen.targets.dsql import ConnectPacer, DsqlTarget, make_dsql_target, parse_endpoint


def _token_fields(token: str) -> dict[str, str]:
    parts = urlsplit("https://" + token)
    assert parts.hostname == ENDPOINT
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


# -- endpoints ------------------------------------------------------------------


def test_region_comes_from_the_endpoint() -> None:
    assert parse_endpoint(ENDPOINT) == (ENDPOINT, "us-east-1")
    assert parse_endpoint(ENDPOINT.upper()) == (ENDPOINT, "us-east-1")
    assert parse_endpoint("abcdefghijklmnopqrstuvwxyz", "eu-west-2") == (
        "abcdefghijklmnopqrstuvwxyz.dsql.eu-west-2.on.aws",
        "eu-west-2",
    )
    assert parse_endpoint("dsql.internal.example.com", "ap-southeast-2") == ("dsql.internal.example.com", "ap-southeast-2")


@pytest.mark.parametrize(
    ("endpoint", "region", "message"),
    [
        (ENDPOINT, "eu-west-1", "disagrees"),
        ("abcdefghijklmnopqrstuvwxyz", None, "needs a Region"),
        ("db.example.com", None, "not a DSQL endpoint"),
        (ENDPOINT, "moon-1", "does not look like an AWS Region"),
    ],
)
def test_bad_endpoints_are_refused_plainly(endpoint: str, region: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_endpoint(endpoint, region)


def test_tls_is_required_and_verified_by_default(tmp_path) -> None:
    with pytest.raises(ConfigError, match="TLS is mandatory"):
        make_dsql_target(ENDPOINT, sslmode="disable")
    with pytest.raises(ConfigError, match="no such file"):
        make_dsql_target(ENDPOINT, sslrootcert=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="require checks no certificate"):
        make_dsql_target(ENDPOINT, sslmode="require", sslrootcert="system")
    params = psycopg.conninfo.conninfo_to_dict(make_dsql_target(ENDPOINT).conninfo())
    assert params["sslmode"] == "verify-full", "AWS's samples: verify-full"
    assert params["sslrootcert"] == certifi.where(), "certifi's roots, found on any machine (not libpq's 'system')"
    assert make_dsql_target(ENDPOINT).describe()["sslrootcert"] == "certifi"
    system = psycopg.conninfo.conninfo_to_dict(make_dsql_target(ENDPOINT, sslrootcert="system").conninfo())
    assert system["sslrootcert"] == "system", "the system's roots stay one option away"
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    target = make_dsql_target(ENDPOINT, sslrootcert=str(bundle))
    params = psycopg.conninfo.conninfo_to_dict(target.conninfo())
    assert params["sslmode"] == "verify-full" and params["sslrootcert"] == str(bundle)
    relaxed = psycopg.conninfo.conninfo_to_dict(make_dsql_target(ENDPOINT, sslmode="require").conninfo())
    assert relaxed["sslmode"] == "require" and "sslrootcert" not in relaxed
    assert make_dsql_target(ENDPOINT, sslmode="require").describe()["sslrootcert"] is None


def test_dsql_sends_no_isolation_level_and_retires_connections_before_60_minutes() -> None:
    target = make_dsql_target(ENDPOINT)
    assert target.sets_isolation is False
    options = pool_options(target)
    assert options["max_lifetime"] < 60 * 60 * 0.95  # psycopg_pool trims up to 5% off, never adds
    assert callable(options["kwargs"])  # called by the pool for every new connection


# -- tokens ----------------------------------------------------------------------


@pytest.mark.parametrize(("user", "action"), [("admin", "DbConnectAdmin"), ("app_rw", "DbConnect")])
def test_a_token_per_connection_from_one_client(fake_aws: dict[str, int], user: str, action: str) -> None:
    target = make_dsql_target(ENDPOINT, db_user=user, token_expiry_s=300, connect_rate=10_000)
    passwords = [target.connect_kwargs()["password"] for _ in range(5)]
    assert fake_aws["clients"] == 1, "one boto3 client per process, made once"
    assert target.tokens.tokens_made == 5, "a token signed for every connection"
    for token in passwords:
        fields = _token_fields(token)
        assert fields["Action"] == action
        assert fields["X-Amz-Expires"] == "300"
        assert fields["X-Amz-Credential"].startswith(f"{FAKE_KEY}/")
        assert fields["X-Amz-Credential"].endswith("/us-east-1/dsql/aws4_request")
        assert fields["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"


def test_default_token_lifetime_is_900_seconds(fake_aws: dict[str, int]) -> None:
    assert _token_fields(make_dsql_target(ENDPOINT).connect_kwargs()["password"])["X-Amz-Expires"] == "900"


def test_token_expiry_is_validated() -> None:
    with pytest.raises(ConfigError, match="token-expiry"):
        make_dsql_target(ENDPOINT, token_expiry_s=0)


def test_one_token_costs_far_below_a_millisecond(fake_aws: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    tokens = make_dsql_target(ENDPOINT).tokens
    t0 = time.perf_counter()
    tokens.client()
    client_ms = (time.perf_counter() - t0) * 1000
    tokens.token()  # warm up
    n = 500
    t0 = time.perf_counter()
    for _ in range(n):
        tokens.token()
    per_token_ms = (time.perf_counter() - t0) * 1000 / n
    with capsys.disabled():
        print(f"\n[dsql] boto3 dsql client: {client_ms:.1f} ms once; one token: {per_token_ms * 1000:.0f} us")
    assert per_token_ms < 1.0


def test_no_token_in_describe_or_conninfo(fake_aws: dict[str, int]) -> None:
    target = make_dsql_target(ENDPOINT)
    token = target.connect_kwargs()["password"]
    signature = _token_fields(token)["X-Amz-Signature"]
    text = repr(target.describe()) + target.conninfo() + repr(target)
    assert signature not in text and "X-Amz" not in text


def test_missing_credentials_are_one_clear_error(fake_aws: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    from loadgen.errors import TargetError

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(TargetError, match="cannot sign a DSQL auth token: NoCredentialsError"):
        make_dsql_target(ENDPOINT).connect_kwargs()


# -- connection pacing -------------------------------------------------------------


def test_pacer_allows_a_burst_then_holds_the_rate() -> None:
    pacer = ConnectPacer(rate=100.0, burst=10)
    delays = [pacer.delay() for _ in range(30)]
    assert delays[:10] == [0.0] * 10
    # the 11th..30th wait 10 ms more each: 100/s after the burst
    assert delays[10] == pytest.approx(0.01, abs=0.003)
    assert delays[29] == pytest.approx(0.20, abs=0.01)
    assert all(b > a for a, b in zip(delays[10:], delays[11:]))


def test_default_pace_is_under_dsql_connection_rate() -> None:
    target = DsqlTarget(ENDPOINT, "us-east-1")
    assert target.pacer.rate < 100 and target.pacer.burst <= 1000


# -- error classification ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "oc"),
    [
        ("mutation conflicts with another transaction, retry as needed (OC000)", "OC000"),
        ("change conflicts with another transaction, please retry: (OC000)", "OC000"),
        ("schema has been updated by another transaction, please retry: (OC001)", "OC001"),
    ],
)
def test_dsql_conflict_texts_are_conflicts_with_their_oc_code(text: str, oc: str) -> None:
    exc = pg_errors.lookup("40001")(text)
    assert isinstance(exc, pg_errors.SerializationFailure)
    c = classify(exc)
    assert (c.outcome, c.sqlstate, c.oc_code) == ("conflict", "40001", oc)


@pytest.mark.parametrize("sqlstate", ["53300", "53400"])
def test_dsql_connection_limits_are_connection_errors(sqlstate: str) -> None:
    from loadgen.model.outcomes import RETRYABLE

    exc = pg_errors.lookup(sqlstate)("too many connections" if sqlstate == "53300" else "connection rate exceeded")
    c = classify(exc)
    assert (c.outcome, c.sqlstate) == ("connection_error", sqlstate)
    assert c.outcome in RETRYABLE
