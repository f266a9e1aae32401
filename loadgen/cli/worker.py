"""A loadgen worker process: ``python -m loadgen.cli.worker --master-host H [--master-port P]``.

What ``loadgen run --processes N`` starts N times, and what ``loadgen run --worker``
runs (:func:`cmd_worker`). Secrets come from the environment (``PGPASSWORD`` or
``LOADGEN_DSN``), never from this command line.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import argparse
import sys

from loadgen.engine.distributed import DEFAULT_MASTER_PORT
from loadgen.engine.worker import run_worker
from loadgen.errors import ConfigError

__all__ = ["main", "cmd_worker"]


def cmd_worker(args: argparse.Namespace) -> int:
    """``loadgen run --worker --master-host H``: users for that master, cell after cell, until it lets go."""
    if not args.master_host:
        raise ConfigError("--worker needs --master-host (the address of the loadgen --master)")
    port = args.master_port or DEFAULT_MASTER_PORT
    print(f"loadgen worker: joining the master at {args.master_host}:{port}", flush=True)
    return run_worker(args.master_host, port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadgen.cli.worker", description="Run loadgen users for a loadgen master.")
    p.add_argument("--master-host", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=DEFAULT_MASTER_PORT)
    args = p.parse_args(argv)
    return run_worker(args.master_host, args.master_port)


if __name__ == "__main__":
    sys.exit(main())
