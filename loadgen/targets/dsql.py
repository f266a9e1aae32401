"""Amazon Aurora DSQL as a target: IAM tokens, TLS, connection pacing and lifetime.

DSQL speaks the PostgreSQL protocol; the differences a load generator meets:

- the password is a short-lived IAM token signed locally by boto3's ``dsql``
  client; it is checked only when a connection opens, so every new connection
  gets a fresh one (one client per process: making a client costs tens of ms,
  signing a token far below one);
- TLS is mandatory, and verified by default (``sslmode=verify-full``, as AWS's
  samples connect) against certifi's CA bundle, which holds Amazon Root CA 1-4:
  ``sslrootcert=system`` would ask psycopg's bundled OpenSSL for a certificate file
  that exists on no user's machine unless ``SSL_CERT_FILE`` names one, so every
  connection would fail. ``require`` encrypts but would hand the token to any server
  that answers; libpq >= 17 can skip the SSLRequest round trip (``sslnegotiation=direct``);
- a connection lives at most 60 minutes, and new connections are limited to
  100/s (burst 1,000) per cluster: the pool replaces connections at 50 minutes
  and new connections are paced below the limit;
- one isolation level (snapshot), so no ``SET TRANSACTION``: a bare ``BEGIN``.

The token is a secret: it never enters the connection string, ``describe()``,
logs or files; it travels only as the ``password`` keyword of one connect call.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError, TargetError, first_line
from loadgen.targets.base import Target
from loadgen.targets.dsql_cloudwatch import cluster_metrics

__all__ = [
    "DsqlTarget",
    "TokenSource",
    "ConnectPacer",
    "parse_endpoint",
    "make_dsql_target",
    "direct_tls_supported",
    "DSQL_MAX_CONNECTIONS",
    "ADMIN",
    "CERTIFI",
    "root_certificates",
]

ADMIN = "admin"
#: DSQL's default per-cluster connection quota.
DSQL_MAX_CONNECTIONS = 10_000
#: DSQL closes a connection after 60 minutes; the pool retires it well before.
MAX_LIFETIME_S = 50 * 60.0
#: DSQL allows 100 new connections/s (burst 1,000) per cluster; stay below it,
#: leaving room for other clients of the same cluster.
DEFAULT_CONNECT_RATE = 80.0
DEFAULT_CONNECT_BURST = 100
DEFAULT_TOKEN_EXPIRY_S = 900
SSLMODES = ("require", "verify-full")
#: ``--sslrootcert`` by default: certifi's bundle (Mozilla's roots, Amazon Root CA 1-4 among
#: them), found on every machine that has loadgen, whatever ``SSL_CERT_FILE`` says.
CERTIFI = "certifi"
#: ``--sslrootcert`` values that name a root store rather than a file: resolved on each machine.
NAMED_ROOT_STORES = ("system", CERTIFI)

_ENDPOINT = re.compile(r"^(?P<cluster>[a-z0-9]+)\.dsql(?:-[a-z0-9]+)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.on\.aws\.?$")
_CLUSTER_ID = re.compile(r"^[a-z0-9]{10,}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")


def parse_endpoint(endpoint: str, region: str | None = None) -> tuple[str, str]:
    """``(host name, region)`` from ``ID.dsql.REGION.on.aws``, or from a bare cluster id and ``region``.

    A host name of another shape (a private DNS name, say) needs ``region``.
    """
    host = endpoint.strip().lower()
    if region is not None and not _REGION.match(region):
        raise ConfigError(f"--region {region!r} does not look like an AWS Region (e.g. us-east-1)")
    m = _ENDPOINT.match(host)
    if m:
        if region is not None and region != m.group("region"):
            raise ConfigError(f"--region {region} disagrees with the endpoint's Region {m.group('region')}")
        return host.rstrip("."), m.group("region")
    if _CLUSTER_ID.match(host):
        if region is None:
            raise ConfigError(
                f"cluster id {host!r} needs a Region: --region, AWS_DEFAULT_REGION, or a profile's region (or give the endpoint ID.dsql.REGION.on.aws)"
            )
        return f"{host}.dsql.{region}.on.aws", region
    if "." in host and region is not None and re.match(r"^[a-z0-9.-]+$", host):
        return host, region
    raise ConfigError(
        f"--endpoint {endpoint!r} is not a DSQL endpoint like ID.dsql.REGION.on.aws (for another host name, also give --region)"
    )


def system_roots_supported() -> bool:
    """Whether the installed libpq accepts ``sslrootcert=system`` (libpq 16+)."""
    import psycopg  # after gevent's patching: this module may load before Locust

    return psycopg.pq.version() >= 160000


def root_certificates(sslrootcert: str) -> str:
    """The value libpq gets for ``sslrootcert``: ``certifi`` is resolved on this machine
    (a worker resolves it on its own), ``system`` and a file path pass through."""
    if sslrootcert == CERTIFI:
        import certifi

        return certifi.where()
    return sslrootcert


def direct_tls_supported() -> bool:
    """Whether the installed libpq can open TLS without the SSLRequest round trip (libpq 17+)."""
    import psycopg  # after gevent's patching: this module may load before Locust

    return psycopg.pq.version() >= 170000


class TokenSource:
    """Signs DSQL IAM tokens with one boto3 ``dsql`` client, made on first use and kept.

    Signing is local (SigV4 presigning): no network, no AWS call.
    """

    def __init__(
        self,
        hostname: str,
        region: str,
        db_user: str = ADMIN,
        expires_in: int = DEFAULT_TOKEN_EXPIRY_S,
        profile: str | None = None,
    ) -> None:
        self.hostname = hostname
        self.region = region
        self.db_user = db_user
        self.expires_in = expires_in
        self.profile = profile
        self.tokens_made = 0
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def action(self) -> str:
        """The IAM action the token grants: ``DbConnectAdmin`` for ``admin``, else ``DbConnect``."""
        return "DbConnectAdmin" if self.db_user == ADMIN else "DbConnect"

    def client(self) -> Any:
        """The process's one ``dsql`` client."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _make_client(self.profile, self.region)
        return self._client

    def credentials_kind(self) -> str | None:
        """What kind of AWS credentials sign the tokens (never the credentials): for run.json.

        ``refreshable`` (a role, SSO: renewed as needed), ``temporary`` (a session token
        that nothing renews: it expires, and reconnects fail from then on), ``long-term``;
        None before the client exists.
        """
        if self._client is None:
            return None
        creds = self._client._request_signer._credentials
        if creds is None:
            return None
        if hasattr(creds, "refresh_needed"):
            return "refreshable"
        return "temporary" if getattr(creds, "token", None) else "long-term"

    def token(self) -> str:
        """A freshly signed token; never log it."""
        client = self.client()
        sign = client.generate_db_connect_admin_auth_token if self.db_user == ADMIN else client.generate_db_connect_auth_token
        try:
            token: str = sign(Hostname=self.hostname, Region=self.region, ExpiresIn=self.expires_in)
        except Exception as e:  # botocore: NoCredentialsError, ProfileNotFound, ...
            raise TargetError(f"cannot sign a DSQL auth token: {type(e).__name__}: {first_line(e)}") from None
        self.tokens_made += 1
        return token


def _make_client(profile: str | None, region: str) -> Any:
    import boto3  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only
    import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

    try:
        return boto3.session.Session(profile_name=profile, region_name=region).client("dsql")
    except botocore.exceptions.BotoCoreError as e:
        raise TargetError(f"cannot create the AWS dsql client: {first_line(e)}") from None


class ConnectPacer:
    """A token bucket for new connections: at most ``burst`` at once, then ``rate`` per second.

    Callers reserve a slot under the lock and sleep outside it, so waiters leave in
    order and the rate holds however many greenlets pile up.
    """

    def __init__(self, rate: float = DEFAULT_CONNECT_RATE, burst: int = DEFAULT_CONNECT_BURST) -> None:
        if not rate > 0:
            raise ConfigError(f"connection rate must be positive, got {rate}")
        if burst < 1:
            raise ConfigError(f"connection burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._available = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Reserve one connection slot; return how long to wait before using it."""
        with self._lock:
            now = time.monotonic()
            self._available = min(self.burst, self._available + (now - self._last) * self.rate)
            self._last = now
            self._available -= 1.0
            return 0.0 if self._available >= 0 else -self._available / self.rate

    def wait(self) -> None:
        pause = self.delay()
        if pause > 0:
            time.sleep(pause)  # gevent-patched under Locust: only this greenlet waits


@dataclass
class DsqlTarget(Target):
    """An Aurora DSQL cluster reached with IAM tokens over TLS."""

    endpoint: str
    region: str
    db_user: str = ADMIN
    profile: str | None = None
    token_expiry_s: int = DEFAULT_TOKEN_EXPIRY_S
    sslmode: str = "verify-full"
    #: The roots verify-full checks against: ``certifi`` (its bundle), a CA bundle file, or
    #: ``system`` (libpq >= 16: the roots of the OpenSSL libpq was built with).
    sslrootcert: str | None = CERTIFI
    connect_rate: float = DEFAULT_CONNECT_RATE
    connect_burst: int = DEFAULT_CONNECT_BURST
    port: int = 5432
    #: Connect to this address instead of resolving ``endpoint`` (libpq ``hostaddr``): for tests.
    hostaddr: str | None = None
    kind: str = "dsql"
    sets_isolation: bool = False
    takes_row_locks: bool = False
    dialect: str = "dsql"
    max_lifetime_s: float = MAX_LIFETIME_S
    #: The cluster's connection quota (DSQL's default 10,000 is adjustable).
    max_connections: int = DSQL_MAX_CONNECTIONS
    tokens: TokenSource = field(init=False, repr=False)
    pacer: ConnectPacer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.token_expiry_s <= 604_800:
            raise ConfigError(f"--token-expiry must be 1 to 604800 seconds, got {self.token_expiry_s}")
        if self.max_connections < 3:
            raise ConfigError(f"--max-connections must be at least 3, got {self.max_connections}")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_$-]*$", self.db_user):
            raise ConfigError(f"--db-user {self.db_user!r} is not a role name")
        self.tokens = TokenSource(self.endpoint, self.region, self.db_user, self.token_expiry_s, self.profile)
        self.pacer = ConnectPacer(self.connect_rate, self.connect_burst)

    def prepare(self, users: int) -> None:
        if users + 2 > self.max_connections:
            raise TargetError(
                f"the run needs {users} connections plus 2 for loadgen, but the cluster allows {self.max_connections:,} "
                f"(DSQL's default quota; if yours was raised, say so with --max-connections)"
            )
        # Sign one token now (local, no network): missing credentials or a bad profile
        # fail here, in one line, before any work. (Making the client alone would not:
        # boto3 builds it without looking for credentials.)
        self.tokens.token()

    def conninfo(self) -> str:
        """Host, user, TLS settings; never the password."""
        from psycopg.conninfo import make_conninfo  # after gevent's patching: this module may load before Locust

        params: dict[str, Any] = {
            "host": self.endpoint,
            "port": self.port,
            "dbname": "postgres",  # the only database DSQL has
            "user": self.db_user,
            "sslmode": self.sslmode,
            "application_name": "loadgen",
        }
        if self.hostaddr:
            params["hostaddr"] = self.hostaddr
        if self.sslrootcert and self.sslmode == "verify-full":
            params["sslrootcert"] = root_certificates(self.sslrootcert)
        if self.sslmode != "disable" and direct_tls_supported():
            params["sslnegotiation"] = "direct"
        return make_conninfo(**params)

    def connect_kwargs(self) -> dict[str, Any]:
        """Called once per new connection: wait for a connection slot, then sign a token for it."""
        self.pacer.wait()
        return {"password": self.tokens.token()}

    def worker_options(self, workers: int) -> dict[str, Any] | None:
        """What a worker process needs to reach the cluster itself (a TargetSpec's options): no secret
        (each worker signs its own tokens from its own credentials chain) and its share of the connection budget.

        Nothing that names this machine's files or configuration: a worker may run on another
        machine. A CA bundle file travels as its content (certificates are public), a named
        root store (``certifi``, ``system``) by name; the AWS profile not at all (a worker
        signs with its own chain: AWS_PROFILE in its environment, an instance role, ...;
        workers started here get this run's profile in their environment). A stand-in reached
        at another address or port (tests) is reached by no other process.
        """
        if self.hostaddr is not None or self.port != 5432:
            return None
        share = max(1, workers)
        roots = self.sslrootcert
        pem: str | None = None
        if roots is not None and roots not in NAMED_ROOT_STORES:
            pem, roots = Path(roots).read_text(), None
        return {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "region": self.region,
            "db_user": self.db_user,
            "token_expiry_s": self.token_expiry_s,
            "sslmode": self.sslmode,
            "sslrootcert": roots,
            "sslrootcert_pem": pem,
            # DSQL counts new connections per cluster: the workers share the rate and the burst.
            "connect_rate": self.connect_rate / share,
            "connect_burst": max(1, self.connect_burst // share),
            "max_connections": self.max_connections,
        }

    def cluster_counters(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The cluster's CloudWatch metrics over ``start``..``end`` (loadgen.targets.dsql_cloudwatch)."""
        return cluster_metrics(self.endpoint.split(".", 1)[0], self.region, self.profile, start, end)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "region": self.region,
            "db_user": self.db_user,
            "auth": f"IAM token ({self.tokens.action}, {self.token_expiry_s} s)",
            "profile": self.profile,
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert if self.sslmode == "verify-full" else None,
            "sslnegotiation": "direct" if self.sslmode != "disable" and direct_tls_supported() else "postgres",
            "connect_rate_per_s": self.connect_rate,
            "connect_burst": self.connect_burst,
            "max_connections": self.max_connections,
            "max_lifetime_s": self.max_lifetime_s,
            "credentials": self.tokens.credentials_kind(),
        }


def make_dsql_target(
    endpoint: str | None,
    region: str | None = None,
    db_user: str | None = None,
    profile: str | None = None,
    token_expiry_s: int | None = None,
    sslrootcert: str | None = None,
    sslmode: str | None = None,
    connect_rate: float | None = None,
    max_connections: int | None = None,
    connect_burst: int | None = None,
    sslrootcert_pem: str | None = None,
) -> DsqlTarget:
    """A ``DsqlTarget`` from command-line values, validated. ``sslrootcert_pem``: a CA bundle's content
    (a worker's copy of its master's bundle file), kept in a private file of this process's."""
    if not endpoint:
        raise ConfigError("--target dsql needs --endpoint ID.dsql.REGION.on.aws (or --ephemeral)")
    if region is None and _CLUSTER_ID.match(endpoint.strip().lower()):
        region = _session_region(profile)  # a bare cluster id: the Region of the AWS profile or environment
    host, reg = parse_endpoint(endpoint, region)
    if sslrootcert_pem is not None:
        if sslrootcert:
            raise ConfigError("give the CA roots once: --sslrootcert or their content (sslrootcert_pem), not both")
        sslrootcert = _private_file("loadgen-ca-", ".pem", sslrootcert_pem)
    mode = sslmode or "verify-full"
    if mode not in SSLMODES:
        raise ConfigError(f"--sslmode must be one of {', '.join(SSLMODES)} for DSQL (TLS is mandatory), got {mode!r}")
    if mode == "require" and sslrootcert:
        raise ConfigError("--sslrootcert is for --sslmode verify-full; require checks no certificate")
    if mode == "verify-full" and not sslrootcert:
        sslrootcert = CERTIFI
    if sslrootcert == "system" and not system_roots_supported():
        raise ConfigError(
            "this libpq (< 16) cannot verify against the system's CA roots: leave --sslrootcert out (certifi's roots), "
            "give a CA bundle file, or --sslmode require (encrypted, but the server's certificate is not checked)"
        )
    if sslrootcert and sslrootcert not in NAMED_ROOT_STORES:
        if not Path(sslrootcert).is_file():
            raise ConfigError(f"--sslrootcert {sslrootcert}: no such file")
    return DsqlTarget(
        endpoint=host,
        region=reg,
        db_user=db_user or ADMIN,
        profile=profile,
        token_expiry_s=DEFAULT_TOKEN_EXPIRY_S if token_expiry_s is None else token_expiry_s,
        sslmode=mode,
        sslrootcert=sslrootcert,
        connect_rate=DEFAULT_CONNECT_RATE if connect_rate is None else connect_rate,
        max_connections=DSQL_MAX_CONNECTIONS if max_connections is None else max_connections,
        connect_burst=DEFAULT_CONNECT_BURST if connect_burst is None else connect_burst,
    )


def _private_file(prefix: str, suffix: str, text: str) -> str:
    """A file of this process's, holding ``text``, removed when the process ends."""
    import atexit
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    atexit.register(lambda: Path(path).unlink(missing_ok=True))
    return path


def _session_region(profile: str | None) -> str | None:
    """The Region boto3 would use (AWS_DEFAULT_REGION, the profile's config); no network."""
    import boto3  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only
    import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

    try:
        return boto3.session.Session(profile_name=profile).region_name
    except botocore.exceptions.BotoCoreError as e:
        raise ConfigError(f"AWS: {first_line(e)}") from None
