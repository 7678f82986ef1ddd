"""Retrain function: EventBridge event -> retrain -> gate -> publish / promote, over sklambda."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sklambda import clients
from sklambda.retrain import Retrainer, RunRecord, request_from_event
from sklambda.settings import RetrainSettings
from sklambda.signing import Signer, Verifier
from sklambda.store import ModelStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = RetrainSettings.from_env()


class RetrainFailedError(Exception):
    """Raised after the run record is written, so the Errors alarm and the DLQ see failures."""


def _log_phase(phase: str, **fields: Any) -> None:
    logger.info(f"retrain {phase}", extra={"phase": phase, **fields})


def _emit(record: RunRecord) -> None:
    metrics.add_dimension(name="model", value=record.request.model)
    metrics.add_metric(name=f"Retrain{record.status.title()}", unit=MetricUnit.Count, value=1)
    holdout = record.challenger.get("metrics", {}).get("holdout", {})
    if "r2" in holdout:
        metrics.add_metric(name="ChallengerHoldoutR2", unit=MetricUnit.NoUnit, value=holdout["r2"])


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = request_from_event(event, settings)
    store = ModelStore(clients.s3(), settings.bucket)
    key = settings.signing_key_id
    signer = Signer(clients.kms(), key) if key else None
    verifier = Verifier(key, settings.require_signed, clients.kms)
    record = Retrainer(store, log=_log_phase, signer=signer, verifier=verifier).run(request)
    _emit(record)
    if record.status == "failed":
        raise RetrainFailedError(f"retrain run {record.run_id} failed: {record.reason}")
    return record.as_dict()
