"""Batch predict: the Lambda function of the batch transform state machine, over sklambda.batch.

One function, three steps of a job (statemachines/batch_transform.asl.json):
  {"action": "resolve", "job_id", "key"}     pin the alias's version, check the input's header
  {"Items": [...], "BatchInput": {...}}      score one Distributed Map batch (the version pinned)
  {"action": "finish", "job_id", "started_at", "state"}   write _SUCCESS.json or _FAILED.json
The model is loaded, signature and sha256 verified, by the same ModelHolder as PredictFunction.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sklambda import batch, clients
from sklambda.errors import DataValidationError
from sklambda.model import LoadedModel
from sklambda.serving import ModelHolder
from sklambda.settings import BatchSettings
from sklambda.store import ModelStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = BatchSettings.from_env()
# One holder per pinned version, for the container's life (a job's batches share a version).
_holders: dict[str, ModelHolder] = {}


# Clients, made once per container (sklambda.clients): the job's files are read and written with
# boto3's default S3 config (large objects); the model is read as PredictFunction reads it.
def _store() -> ModelStore:
    return clients.serving_store(settings.bucket)


def _on_load(model: LoadedModel, timings: dict[str, float], reason: str) -> None:
    logger.info(
        "model loaded",
        extra={"model_version": model.manifest.version, "reason": reason, **timings},
    )


def load(version: str | None) -> LoadedModel:
    """The model pinned to `version`; None resolves the alias now (a fresh holder each time: a
    warm container must not keep an alias's version from an earlier job)."""
    holder = _holders.get(version) if version else None
    if holder is None:
        holder = ModelHolder(
            settings.serving(version), _store, on_load=_on_load, kms_factory=clients.serving_kms
        )
    model = holder.get()
    _holders.setdefault(model.manifest.version, holder)
    return model


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """Route one event to its step of the job."""
    if "Items" in event:
        job = event.get("BatchInput") or {}
        fmt = job.get("format")
        if fmt not in ("csv", "jsonl") or not job.get("version") or not job.get("job_id"):
            raise DataValidationError('BatchInput needs "job_id", "version" and "format"')
        items = [batch.Item.from_event(raw) for raw in event["Items"]]
        result = batch.score_batch(
            clients.s3(), settings.bucket, job["job_id"], load(job["version"]), items, fmt=fmt
        )
        metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=result.out)
        metrics.add_metric(name="BatchRowsRejected", unit=MetricUnit.Count, value=result.rejected)
        return result.as_dict()
    action = event.get("action")
    if action == "resolve":
        job = batch.resolve_job(
            clients.s3(),
            settings.bucket,
            str(event.get("key")),
            str(event.get("job_id") or ""),
            load,
        )
        job["tolerated_failure_percentage"] = settings.tolerated_failure_percentage
        job["results_prefix"] = batch.job_prefix(job["job_id"]) + "results"
        return job
    if action == "finish":
        state = event.get("state") or {}
        job = state.get("job") or {"job_id": event.get("job_id"), "key": state.get("key")}
        return batch.finish_job(
            clients.s3(),
            settings.bucket,
            job,
            str(event.get("started_at")),
            results_manifest_key=(state.get("map") or {}).get("ResultWriterDetails", {}).get("Key"),
            error=state.get("error"),
        )
    raise DataValidationError(f"unknown batch event (action {str(action)[:40]!r})")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event)
