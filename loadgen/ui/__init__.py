"""Locust's web UI with loadgen's start form and Contention tab."""

from pathlib import Path

#: The file to give ``locust -f``: loadgen's users, options and Contention tab.
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
