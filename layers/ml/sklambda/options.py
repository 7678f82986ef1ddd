"""Request options (`intervals`, `explain`): where a request gives them, and how query text reads.

One place for both routes: POST /predict takes them at the JSON body's top level (which wins)
or in the query string; POST /v2/models/{name}/infer in the request's `parameters`. JSON values
are checked by their option (sklambda.conformal, sklambda.explain); query text is read here, by
one strict grammar (query_value, QUERY_FORMS), the same for every option.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Keys a JSON body may carry at its top level beside its rows (taken out before the rows are
# read, so a single record does not warn of them), and query string parameters.
OPTIONS = ("intervals", "explain")

# The query text an option takes, exactly (no spaces, no other case, no 1/0, no empty value):
# `true`, `false`, or (a coverage) a decimal fraction such as 0.9 or .95. Not Python's float():
# that also reads " 0.9", "0.9_0", "nan", "inf" and "1e-1".
QUERY_FORMS = "true, false, or a decimal such as 0.9"
_DECIMAL = re.compile(r"0?\.[0-9]{1,15}")


def query_value(text: str) -> Any:
    """Query text as the JSON value it stands for: true/false a boolean, a decimal fraction a
    float; any other text stays text, for the option's own check to refuse (a 400 in its words)."""
    if text in ("true", "false"):
        return text == "true"
    if _DECIMAL.fullmatch(text):
        return float(text)
    return text


def option(
    name: str, values: Any, where: str, query: Mapping[str, str] | None = None
) -> tuple[Any, str] | None:
    """A request option's value and where it was given: `values` (a JSON object: the body, or
    V2's `parameters`) wins, as given there (`where`); else the `query` text ("query": its
    option reads it with query_value); None when neither gives it."""
    if isinstance(values, Mapping) and name in values:
        return values[name], where
    if query and name in query:
        return query[name], "query"
    return None
