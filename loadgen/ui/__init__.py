"""Locust's web UI with loadgen's start form and Contention tab."""
