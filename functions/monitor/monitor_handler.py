"""Monitor function: scheduled event -> drift report over the capture since the last run
(sklambda.monitor) -> FeatureDrift metrics, one per feature, and MaxFeatureDrift for the alarm."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from sklambda import clients
from sklambda.monitor import MonitorRun, run_monitor
from sklambda.settings import MonitorSettings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = MonitorSettings.from_env()


def _emit(run: MonitorRun) -> None:
    """Each judged feature's PSI (dimension feature) and the largest (the DriftAlarm's metric);
    nothing when no feature had enough rows: the alarm treats missing data as not breaching."""
    report = run.report or {}
    max_psi: dict[str, float] = report.get("max_psi", {})
    metrics.add_dimension(name="model", value=settings.model)
    metrics.add_metric(
        name="CapturedRecords", unit=MetricUnit.Count, value=report.get("records", 0)
    )
    for feature, value in sorted(max_psi.items()):
        with single_metric(
            name="FeatureDrift",
            unit=MetricUnit.NoUnit,
            value=value,
            namespace=metrics.namespace,
            default_dimensions={"model": settings.model, "service": metrics.service or ""},
        ) as metric:
            metric.add_dimension(name="feature", value=feature)
    if max_psi:
        metrics.add_metric(
            name="MaxFeatureDrift", unit=MetricUnit.NoUnit, value=max(max_psi.values())
        )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = run_monitor(
        clients.s3(),
        settings.bucket,
        settings.model,
        threshold=settings.threshold,
        min_rows=settings.min_rows,
    )
    _emit(run)
    summary = {
        "files": run.files,
        "report": run.report_key,
        "records": (run.report or {}).get("records", 0),
        "drifted": (run.report or {}).get("drifted", []),
    }
    logger.info("drift report", extra=summary)
    return summary
