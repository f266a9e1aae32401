"""Run loadgen from Locust itself: ``locust -f loadgen/ui/locustfile.py``.

loadgen's settings (accounts, key distribution, retry policy, lock mode, target)
become Locust options and fields of the web UI's start form; each start re-seeds
the bank and builds a fresh bench. The web UI gains a Contention tab. The web UI
listens on 127.0.0.1 unless ``--web-host`` says otherwise.
"""

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split
from locust import events

from loadgen.engine.users import TransferUser
from loadgen.ui.webui import install

install(events)

__all__ = ["TransferUser"]
