"""Schemathesis hooks for the OpenAPI conformance run (tests/e2e/schemathesis.toml).

POST /predict documents one 422 that no JSON Schema can draw the line for: a schema-valid record
whose values lie so far outside the training range that the prediction overflows (exp of 1e300
for a log target) answers 422 "prediction is not finite". schemathesis.toml therefore lets the
built-in positive_data_acceptance check pass a 422, and this check takes its place for 422: a
schema-valid request may be refused with 422 for that reason only. Any other 422 to valid data
(a feature the document calls optional but the API requires, a category it does not know...)
fails the run, as positive_data_acceptance itself would. The same for 413: valid data may get it
only when the reply would be too large to send (explanations for more than MAX_EXPLAIN_ROWS
rows, or a reply over Lambda's 6 MB).
"""

from __future__ import annotations

import ast
import sys
import threading
from typing import Any

import schemathesis

if sys.version_info < (3, 12):
    # CPython 3.11's AST constructor keeps one recursion-depth counter for all threads: two
    # workers parsing at once (Hypothesis parses a lambda's source to describe a strategy) raise
    # "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905, fixed in
    # 3.12). One parse at a time in this process; nothing else here parses.
    _parse = ast.parse
    _parsing = threading.Lock()

    def _serial_parse(*args: Any, **kwargs: Any) -> Any:
        with _parsing:
            return _parse(*args, **kwargs)

    ast.parse = _serial_parse  # type: ignore[assignment]

OVERFLOW = "prediction is not finite"
# A schema-valid request whose reply would be too large: explanations for more than
# MAX_EXPLAIN_ROWS rows, or any reply over Lambda's response limit (api.sized_reply).
TOO_LARGE_TO_ANSWER = ("MAX_EXPLAIN_ROWS", "send fewer rows")


@schemathesis.check
def valid_data_refused_413_only_for_a_reply_too_large(ctx: Any, response: Any, case: Any) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 413:
        return
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = {}
    message = str(error.get("message", ""))
    if error.get("code") != "payload_too_large" or not any(
        reason in message for reason in TOO_LARGE_TO_ANSWER
    ):
        raise AssertionError(
            "Valid data should have been accepted: 413 is documented for valid data only when "
            f"the reply would be too large to send; got {response.text[:500]}"
        )


@schemathesis.check
def valid_data_refused_only_for_overflow(ctx: Any, response: Any, case: Any) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return
    if "/v2/models/" in case.path:  # see the [[operations]] entry in schemathesis.toml
        return
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        details = []
    if not details or any(d.get("message") != OVERFLOW for d in details):
        raise AssertionError(
            "Valid data should have been accepted: 422 is documented for valid data only when "
            f"the prediction overflows; got {response.text[:500]}"
        )
