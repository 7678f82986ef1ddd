"""PreTraffic hook: CodeDeploy's lifecycle event -> the smoke test of the new PredictFunction
version (sklambda.smoke) -> Succeeded or Failed back to CodeDeploy, before any traffic moves."""

from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from sklambda import clients, smoke
from sklambda.settings import PreTrafficSettings

logger = Logger()
tracer = Tracer()
settings = PreTrafficSettings.from_env()
# The cases' events from events/, shipped with the function (make -C functions/pre_traffic events).
EVENTS = smoke.load_bundle(Path(__file__).with_name("smoke_events.json"))
# The version's first invoke is its cold start (model load included): room for PredictFunction's
# own 30 s timeout; one retry, for a throttle.
INVOKE_CONFIG = Config(
    connect_timeout=5, read_timeout=35, retries={"max_attempts": 2, "mode": "standard"}
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    invoke = smoke.lambda_invoker(clients.lambda_client(INVOKE_CONFIG), settings.target)
    verdict = smoke.run_hook(event, invoke, clients.codedeploy(), EVENTS)
    summary = {"target": settings.target, **verdict.summary()}
    if verdict.passed:
        logger.info("smoke test passed", extra=summary)
    else:
        logger.error("smoke test failed: the deploy stops", extra=summary)
    return summary
