"""Typed settings: every environment variable a function reads, in one place.

Each field's alias is the variable's name; template.yaml declares every one of them for the
function that reads it (a unit test fails otherwise). An empty variable means the default, as
`!Ref` of an empty template parameter gives "".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from sklambda.errors import ConfigError, Problem

DEFAULT_ALIAS = "live"


def _comma_list(value: Any) -> Any:
    """A comma-separated variable ("a, b") as a tuple of its non-empty items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


# Feature names, written "a,b" in the environment.
Names = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]


class _EnvSettings(BaseModel):
    model_config = ConfigDict(
        frozen=True, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        present = {name: env[name] for name in cls.variables() if env.get(name)}
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            problems = [Problem(str(e["loc"][0]), e["msg"]) for e in exc.errors()]
            raise ConfigError(f"invalid {cls.__name__} in the environment", problems) from None

    @classmethod
    def variables(cls) -> set[str]:
        """The environment variables this class reads."""
        return {str(field.validation_alias or name) for name, field in cls.model_fields.items()}


class ServingSettings(_EnvSettings):
    """The predict function's configuration (PredictFunction in template.yaml)."""

    bucket: str = Field(default="", validation_alias="MODEL_BUCKET")
    model_name: str = Field(default="", validation_alias="MODEL_NAME")
    alias: str = Field(default=DEFAULT_ALIAS, validation_alias="MODEL_ALIAS")
    version: str = Field(
        default="", validation_alias="MODEL_VERSION", description="pin a version; ignores alias"
    )
    refresh_seconds: float = Field(default=300.0, validation_alias="MODEL_REFRESH_SECONDS", ge=0)
    max_rows: int = Field(default=10_000, validation_alias="MAX_BATCH_ROWS", gt=0)
    # Under Lambda's 6 MB invoke limit with room for the event around the body: a bigger body
    # never reaches the function (API Gateway answers 502), so ours must be the one that says 413.
    max_body_bytes: int = Field(default=5_000_000, validation_alias="MAX_BODY_BYTES", gt=0)
    # Most rows one request may ask explanations of (413 above, before any work). Measured,
    # a row's explanation takes ~44 bytes per feature and class in the invoke's response (name,
    # number, quotes escaped twice): penguins' 10,000 rows (6 features x 3 classes) 7.9 MB.
    # 6 MB / 1,000 rows / 44 B: 1,000 rows fit up to ~140 values a row (a 45-feature 3-class
    # model, a 140-feature regressor); wider models meet the reply guard (api.sized_reply).
    max_explain_rows: int = Field(default=1_000, validation_alias="MAX_EXPLAIN_ROWS", gt=0)
    cache_dir: Path = Field(default=Path("/tmp/models"), validation_alias="MODEL_CACHE_DIR")
    # "auto": serve model.npz when the manifest has one (no scikit-learn import, no pickle);
    # "joblib": always the pickle; "npz": model.npz only, a version without one is refused.
    model_format: Literal["auto", "joblib", "npz"] = Field(
        default="auto", validation_alias="MODEL_FORMAT"
    )
    # The KMS key whose signature (models/<name>/versions/<v>/attestation.json) a model must
    # carry when require_signed; a signed model that does not verify is refused either way.
    signing_key_id: str = Field(default="", validation_alias="MODEL_SIGNING_KEY_ID")
    require_signed: bool = Field(default=False, validation_alias="REQUIRE_SIGNED_MODELS")
    # Prediction capture (sklambda.capture): the Firehose delivery stream (empty: off) and the
    # share of requests sent to it; features dropped, or keyed-hashed, before a record leaves.
    # Each name must be a feature of the served model, exactly (case included): otherwise that
    # model's capture is refused, never sent with the value in clear (sklambda.capture).
    capture_stream: str = Field(default="", validation_alias="CAPTURE_STREAM")
    capture_sample_rate: float = Field(
        default=0.0, validation_alias="CAPTURE_SAMPLE_RATE", ge=0, le=1
    )
    capture_exclude: Names = Field(default=(), validation_alias="CAPTURE_EXCLUDE_FEATURES")
    capture_hash: Names = Field(default=(), validation_alias="CAPTURE_HASH_FEATURES")
    # The Secrets Manager secret whose value keys the hash (empty: the stream's name, weaker).
    capture_hash_key_secret: str = Field(default="", validation_alias="CAPTURE_HASH_KEY_SECRET")
    # Longest an invocation waits for its capture put (only while the stream answers).
    capture_flush_ms: float = Field(default=50.0, validation_alias="CAPTURE_FLUSH_MS", ge=0)
    # A second alias (e.g. candidate) scored on the captured requests after the reply, unseen.
    shadow_alias: str = Field(default="", validation_alias="SHADOW_ALIAS")


class RetrainSettings(_EnvSettings):
    """The retrain function's configuration (RetrainFunction in template.yaml)."""

    bucket: str = Field(default="", validation_alias="MODEL_BUCKET")
    model: str = Field(default="", validation_alias="MODEL_NAME")
    alias: str = Field(default=DEFAULT_ALIAS, validation_alias="MODEL_ALIAS")
    tolerance: float = Field(default=0.01, validation_alias="PROMOTION_TOLERANCE", ge=0)
    # None (an empty variable): the model config's promotion_floor / baseline_margin.
    floor: float | None = Field(default=None, validation_alias="PROMOTION_FLOOR")
    baseline_margin: float | None = Field(default=None, validation_alias="BASELINE_MARGIN", ge=0)
    # Signs each version it publishes; verifies the champion (as the predict function does)
    # before scoring it.
    signing_key_id: str = Field(default="", validation_alias="MODEL_SIGNING_KEY_ID")
    require_signed: bool = Field(default=False, validation_alias="REQUIRE_SIGNED_MODELS")
    # Set (RetrainToShadow): a challenger that passes the gate moves this alias, not `alias`;
    # PredictFunction scores live traffic with it and a person promotes it.
    shadow_alias: str = Field(default="", validation_alias="SHADOW_ALIAS")


class MonitorSettings(_EnvSettings):
    """The drift monitor's configuration (MonitorFunction in template.yaml)."""

    bucket: str = Field(default="", validation_alias="MODEL_BUCKET")
    model: str = Field(default="", validation_alias="MODEL_NAME")
    # A feature drifts when its PSI against the training profile is above this.
    threshold: float = Field(default=0.2, validation_alias="DRIFT_THRESHOLD", gt=0)
    # Fewer live values than this: PSI and KS are reported, never judged (mostly noise).
    min_rows: int = Field(default=100, validation_alias="DRIFT_MIN_ROWS", gt=0)


class PreTrafficSettings(_EnvSettings):
    """The PreTraffic hook's configuration (PreTrafficHookFunction in template.yaml)."""

    # The predict function version a deploy publishes (SAM's `!Ref PredictFunction.Version`,
    # its ARN): the one the smoke test invokes before CodeDeploy shifts traffic to it.
    target: str = Field(default="", validation_alias="TARGET_FUNCTION_VERSION")


class BatchSettings(_EnvSettings):
    """The batch predict function's configuration (BatchPredictFunction in template.yaml). The
    version is not here: each job pins one, resolved from the alias at its start."""

    bucket: str = Field(default="", validation_alias="MODEL_BUCKET")
    model_name: str = Field(default="", validation_alias="MODEL_NAME")
    alias: str = Field(default=DEFAULT_ALIAS, validation_alias="MODEL_ALIAS")
    model_format: Literal["auto", "joblib", "npz"] = Field(
        default="auto", validation_alias="MODEL_FORMAT"
    )
    cache_dir: Path = Field(default=Path("/tmp/models"), validation_alias="MODEL_CACHE_DIR")
    signing_key_id: str = Field(default="", validation_alias="MODEL_SIGNING_KEY_ID")
    require_signed: bool = Field(default=False, validation_alias="REQUIRE_SIGNED_MODELS")
    # Share of the map's batches that may fail before the job fails (Step Functions'
    # ToleratedFailurePercentage, returned by the job's resolve step).
    tolerated_failure_percentage: float = Field(
        default=0.0, validation_alias="BATCH_TOLERATED_FAILURE_PERCENTAGE", ge=0, le=100
    )

    def serving(self, version: str | None) -> ServingSettings:
        """The settings a ModelHolder loads with: this model pinned to `version` (None: the
        alias, read once), never refreshed, verified as the predict function verifies."""
        return ServingSettings(
            bucket=self.bucket,
            model_name=self.model_name,
            alias=self.alias,
            version=version or "",
            refresh_seconds=0,
            cache_dir=self.cache_dir,
            model_format=self.model_format,
            signing_key_id=self.signing_key_id,
            require_signed=self.require_signed,
        )
