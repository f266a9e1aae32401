"""Errors shown to the user as one line (loadgen.errors). No database."""

from __future__ import annotations

import psycopg

from loadgen.errors import first_line


def test_first_line_keeps_a_driver_error_to_its_first_line() -> None:
    e = psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "bob"\nDETAIL: more\n')
    assert first_line(e) == 'connection failed: FATAL:  password authentication failed for user "bob"'


def test_first_line_of_an_exception_without_a_message_is_its_type() -> None:
    assert first_line(TimeoutError()) == "TimeoutError"
    assert first_line(ValueError("  \n ")) == "ValueError"
