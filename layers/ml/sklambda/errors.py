"""Errors that carry an HTTP-style status, a stable code and per-field details for users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: which field, which row (0-based) and what."""

    field: str | None
    message: str
    row: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.row is not None:
            out["row"] = self.row
        return out


@dataclass
class SklambdaError(Exception):
    """Base error. `status` is the HTTP status the API answers with; `code` is machine-readable."""

    message: str
    details: list[Problem] = field(default_factory=list)
    status: int = 500
    code: str = "internal_error"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self, limit: int = 5) -> str:
        """The message plus the first few details, on one line (for CLIs and logs)."""
        if not self.details:
            return self.message
        shown = "; ".join(_describe(p) for p in self.details[:limit])
        more = len(self.details) - limit
        suffix = f"; ... and {more} more" if more > 0 else ""
        return f"{self.message}: {shown}{suffix}"


def _describe(problem: Problem) -> str:
    where = problem.field or "input"
    if problem.row is not None:
        where += f" (row {problem.row})"
    return f"{where}: {problem.message}"


class ConfigError(SklambdaError):
    """The model config (TOML) is invalid."""

    def __init__(self, message: str, details: list[Problem] | None = None) -> None:
        super().__init__(message, details or [], 400, "invalid_config")


class DataValidationError(SklambdaError):
    """Input data does not match the feature schema (training CSV or prediction request)."""

    def __init__(self, message: str, details: list[Problem] | None = None) -> None:
        super().__init__(message, details or [], 422, "validation_error")


class RegistryError(SklambdaError):
    """The model store refused an operation (missing version, existing version, lost race)."""

    def __init__(self, message: str, code: str = "registry_error", status: int = 409) -> None:
        super().__init__(message, [], status, code)


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


class RuntimeMismatchError(SklambdaError):
    """The artifact was trained with library versions other than the ones this runtime has."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 503, "runtime_mismatch")


class RequestError(SklambdaError):
    """The request is not in a format the API understands (400), or is too large (413)."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message, [], status, code)
