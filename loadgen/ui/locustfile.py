"""Run loadgen from Locust itself: ``locust -f loadgen/ui/locustfile.py``.

loadgen's settings (accounts, key distribution, retry policy, lock mode, target)
become Locust options and fields of the web UI's start form; each start re-seeds
the bank and builds a fresh shared state for its users. The web UI gains a Contention tab. The web UI
listens on 127.0.0.1 unless ``--web-host`` says otherwise. The exit code follows
loadgen's rule, not Locust's: conflicts are measured, not failures (loadgen.ui.exitcode,
registered by loadgen.ui.webui.install).
"""

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split
import gevent
from locust import events

from loadgen.engine.users import TransferUser
from loadgen.ui.webui import install

install(events)


# Importing loadgen (pandas, pyarrow, psycopg) takes seconds, and gevent's loop has not run
# since Locust created it: its cached clock is that much behind, and Locust's --run-time
# timer, armed next, would fire early by as much (a 4 s test ended after 1 s on a busy machine).
gevent.get_hub().loop.update_now()


__all__ = ["TransferUser"]
