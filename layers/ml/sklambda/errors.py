"""Errors that carry an HTTP-style status, a stable code and per-field details for users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

# Problems kept as examples: the first few of each field, and at most this many in all. Counts
# are never capped (ProblemLog).
EXAMPLES_PER_FIELD = 5
MAX_DETAILS = 250


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: which field, which row (0-based, into the request or the
    table) and what; `line` is the row's line in a CSV file (the header is line 1), set only for
    data read from a file, where a person counts lines rather than rows."""

    field: str | None
    message: str
    row: int | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.row is not None:
            out["row"] = self.row
        if self.line is not None:
            out["line"] = self.line
        return out

    @property
    def where(self) -> str:
        """Where the problem is: "line 12" in a file, "row 10" in a request, or ""."""
        if self.line is not None:
            return f"line {self.line}"
        return f"row {self.row}" if self.row is not None else ""


class ProblemLog:
    """Problems as they are found: the true count per field (None: the input as a whole), and
    the first EXAMPLES_PER_FIELD of each field as details (MAX_DETAILS in all). One broken
    column can neither hide the others nor make a capped count look like the total."""

    def __init__(self) -> None:
        self.details: list[Problem] = []
        self.counts: dict[str | None, int] = {}

    def add(self, problem: Problem) -> None:
        seen = self.counts.get(problem.field, 0) + 1
        self.counts[problem.field] = seen
        if seen <= EXAMPLES_PER_FIELD and len(self.details) < MAX_DETAILS:
            self.details.append(problem)

    def __bool__(self) -> bool:
        return bool(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """The true total, and per column when there are several: "1,775 invalid values in x",
        "1,203 invalid values in 3 columns: x 1,000, n 200, y 3"."""
        total = _count(self.total)
        if len(self.counts) == 1:
            return f"{total} in {next(iter(self.counts)) or 'the input'}"
        each = ", ".join(f"{f or 'input'} {n:,}" for f, n in self.counts.items())
        return f"{total} in {len(self.counts)} columns: {each}"

    def error(self, prefix: str = "") -> DataValidationError:
        """A DataValidationError with the summary (after `prefix`), examples and true counts."""
        return DataValidationError(prefix + self.summary(), self.details, self.counts)


def _plural(noun: str, n: int) -> str:
    return noun if n == 1 else noun + "s"


@dataclass
class SklambdaError(Exception):
    """Base error. `status` is the HTTP status the API answers with; `code` is machine-readable."""

    message: str
    details: list[Problem] = field(default_factory=list)
    status: int = 500
    code: str = "internal_error"
    # The true number of problems per field when `details` holds only the first few of each
    # (ProblemLog); empty when every problem is a detail.
    counts: dict[str | None, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.one_line()

    @property
    def total(self) -> int:
        """How many problems there are, whether or not each is a detail."""
        return sum(self.counts.values()) if self.counts else len(self.details)

    def one_line(self, limit: int = 5) -> str:
        """The message plus the first few details, on one line (for logs and run records)."""
        if not self.details:
            return self.message
        shown = "; ".join(_describe(p) for p in self.details[:limit])
        more = self.total - min(limit, len(self.details))
        suffix = f"; ... and {more:,} more" if more > 0 else ""
        return f"{self.message}: {shown}{suffix}"

    def lines(self, per_field: int = 3) -> list[str]:
        """For a person at a terminal: the message, then one line per field with its true count
        and its first few problems; a single field stays on one line."""
        if not self.counts or not self.details:
            return [self.one_line()]
        groups: dict[str | None, list[Problem]] = {}
        for problem in self.details:
            groups.setdefault(problem.field, []).append(problem)

        def examples(name: str | None, count: int) -> str:
            problems = groups.get(name, [])[:per_field]
            shown = "; ".join(f"{p.where}: {p.message}" if p.where else p.message for p in problems)
            more = count - len(problems)
            return shown + (f"; ... and {more:,} more" if more > 0 and shown else "")

        if len(self.counts) == 1:
            ((name, count),) = self.counts.items()
            return [f"{self.message}: {examples(name, count)}"]
        out = [self.message]
        for name, count in self.counts.items():
            shown = examples(name, count)
            out.append(f"{name or 'input'}: {_count(count)}" + (f": {shown}" if shown else ""))
        return out


def _count(n: int) -> str:
    return f"{n:,} invalid {_plural('value', n)}"


def _describe(problem: Problem) -> str:
    where = problem.field or "input"
    if problem.where:
        where += f" ({problem.where})"
    return f"{where}: {problem.message}"


class ConfigError(SklambdaError):
    """The model config (TOML) is invalid."""

    def __init__(self, message: str, details: list[Problem] | None = None) -> None:
        super().__init__(message, details or [], 400, "invalid_config")


class DataValidationError(SklambdaError):
    """Input data does not match the feature schema (training CSV or prediction request)."""

    def __init__(
        self,
        message: str,
        details: list[Problem] | None = None,
        counts: dict[str | None, int] | None = None,
    ) -> None:
        super().__init__(message, details or [], 422, "validation_error", counts or {})


class RegistryError(SklambdaError):
    """The model store refused an operation (missing version, existing version, lost race)."""

    def __init__(self, message: str, code: str = "registry_error", status: int = 409) -> None:
        super().__init__(message, [], status, code)


class InvalidNameError(RegistryError):
    """A model name, version, alias, run id, sha256 or key does not fit its pattern
    (sklambda.names): refused before any S3 key or local path is built from it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "invalid_name", 400)


class AliasConflictError(RegistryError):
    """An alias changed between reading it and writing it: the write was not made."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "alias_conflict", 409)


class ModelUnavailableError(SklambdaError):
    """No model can be served right now (503, with Retry-After)."""

    def __init__(
        self, message: str, code: str = "model_unavailable", retry_after: float | None = None
    ) -> None:
        super().__init__(message, [], 503, code)
        self.retry_after = retry_after


class IntegrityError(SklambdaError):
    """An artifact's bytes do not match the sha256 its manifest promises."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 503, "integrity_error")


class SignatureError(SklambdaError):
    """A model's attestation is missing where one is required (unsigned_model), does not verify
    or vouches for another manifest (bad_signature), or cannot be checked (signing_key_...)."""

    def __init__(self, message: str, code: str = "bad_signature") -> None:
        super().__init__(message, [], 503, code)


class RuntimeMismatchError(SklambdaError):
    """The artifact was trained with library versions other than the ones this runtime has."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 503, "runtime_mismatch")


class RequestError(SklambdaError):
    """The request is not in a format the API understands (400), or is too large (413)."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message, [], status, code)


def first_validation_error(exc: ValidationError) -> str:
    """The first problem pydantic found, as "location: message" (for one-line errors)."""
    first = exc.errors()[0]
    return ".".join(str(p) for p in first["loc"]) + f": {first['msg']}"
