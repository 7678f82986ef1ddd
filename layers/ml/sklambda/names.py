"""Names that become S3 keys or local paths: model, version, alias, run id, sha256, artifact file
and dataset key. One strict pattern each, here only, checked before any key or path is built.

Whoever can write to models/ can write any alias record or manifest, and a CLI argument is
whatever was typed: every such name is input. The patterns are anchored and allow no "/" (except
between a dataset key's parts), no leading dot and no "..", so no name can leave its folder; they
also bound the length. Manifest and alias records use the pydantic types below; the store's key
builders, its cache paths and the CLI call `validate_name`.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import StringConstraints

from sklambda.errors import InvalidNameError

MODEL_FILE: Final = "model.joblib"
NUMPY_FILE: Final = "model.npz"

NameKind = Literal[
    "model name",
    "version",
    "run id",
    "alias",
    "sha256",
    "dataset key",
    "job id",
    "part number",
    "extra file",
]

_TIMESTAMPED = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"  # sklambda.artifact.new_version, new_run_id
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"  # one part of a dataset key: starts alphanumeric
_CSV = r"\.[cC][sS][vV]"
PATTERNS: Final[dict[NameKind, str]] = {
    "model name": r"^[a-z0-9][a-z0-9-]{0,62}$",
    "version": _TIMESTAMPED,
    "run id": _TIMESTAMPED,
    "alias": r"^[a-z][a-z0-9-]{0,31}$",
    "sha256": r"^[0-9a-f]{64}$",
    "dataset key": rf"^datasets/[a-z0-9][a-z0-9-]{{0,62}}/(?:{_PART}/){{0,4}}{_PART}{_CSV}$",
    # A batch job: its Step Functions execution name (at most 80 characters there).
    "job id": r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$",
    # A batch part: the 0-based index of its first row in the input (zero-padded in keys).
    "part number": r"^(?:0|[1-9][0-9]{0,9})$",
    # A file published beside a version's artifacts (report.html): one plain file name.
    "extra file": r"^[a-z0-9][a-z0-9_-]{0,62}\.(?:html|json|txt|md|png|svg)$",
}
EXPECTED: Final[dict[NameKind, str]] = {
    "model name": "lower-case letters, digits and dashes, at most 63",
    "version": "YYYYMMDDTHHMMSSZ-<8 hex digits>, as training writes it",
    "run id": "YYYYMMDDTHHMMSSZ-<8 hex digits>",
    "alias": "a lower-case letter, then lower-case letters, digits and dashes, at most 32",
    "sha256": "64 lower-case hex digits",
    "dataset key": "datasets/<model name>/<file>.csv",
    "job id": "letters, digits, dashes and underscores, starting alphanumeric, at most 80",
    "part number": "a whole number from 0 to 9,999,999,999",
    "extra file": "a lower-case file name ending .html, .json, .txt, .md, .png or .svg",
}

ModelName = Annotated[str, StringConstraints(pattern=PATTERNS["model name"])]
Version = Annotated[str, StringConstraints(pattern=PATTERNS["version"])]
Alias = Annotated[str, StringConstraints(pattern=PATTERNS["alias"])]
Sha256 = Annotated[str, StringConstraints(pattern=PATTERNS["sha256"])]
# An artifact's key in its version folder, and its file name in an artifact folder: exactly one
# of the files training writes (never a path).
ArtifactKey = Literal["model.joblib", "model.npz"]


def is_valid(kind: NameKind, value: object) -> bool:
    # fullmatch: "$" alone would also accept a trailing newline.
    return isinstance(value, str) and re.fullmatch(PATTERNS[kind], value) is not None


def validate_name(kind: NameKind, value: object) -> str:
    """`value` when it is a valid name of this kind; else InvalidNameError (400, invalid_name),
    showing at most the first 40 characters of it."""
    if is_valid(kind, value):
        assert isinstance(value, str)
        return value
    shown = repr(value)
    shown = shown if len(shown) <= 40 else f"{shown[:40]}... ({len(str(value)):,} characters)"
    raise InvalidNameError(f"invalid {kind} {shown}: expected {EXPECTED[kind]}")
