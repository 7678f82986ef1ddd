"""AWS clients, made once per container (per service and config) and shared by its invocations.

Making a client costs several ms to tens of ms (its service model read, its endpoint resolved;
the first of a process far more), which a function paid on every invocation, or on every batch
of a batch job, when it made its own. A made client is thread-safe; making one from boto3's
default session is not, hence the lock (the model refresh, shadow and capture threads make
theirs too). The functions name the clients they use in their handlers, so what each function
may do still reads from its handler, as from its IAM policy in template.yaml.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config

from sklambda.store import SERVING_S3_CONFIG, ModelStore

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Keyed by the Config object itself (compared by identity; the key keeps it alive).
_made: dict[tuple[str, Config | None], Any] = {}
_lock = threading.Lock()


def _client(service: str, config: Config | None) -> Any:
    key = (service, config)
    client = _made.get(key)
    if client is None:
        with _lock:
            client = _made.get(key)
            if client is None:
                client = _made[key] = boto3.client(service, config=config)  # type: ignore[call-overload]
    return client


def clear() -> None:
    """Forget every client: the next call makes a new one (tests, each under its own
    environment; a SnapStart restore, which must not reuse snapshot-time connections)."""
    with _lock:
        _made.clear()


def s3(config: Config | None = None) -> S3Client:
    return cast("S3Client", _client("s3", config))


def kms(config: Config | None = None) -> KMSClient:
    return cast("KMSClient", _client("kms", config))


def lambda_client(config: Config | None = None) -> LambdaClient:
    return cast("LambdaClient", _client("lambda", config))


def codedeploy(config: Config | None = None) -> CodeDeployClient:
    return cast("CodeDeployClient", _client("codedeploy", config))


def secretsmanager(config: Config | None = None) -> SecretsManagerClient:
    return cast("SecretsManagerClient", _client("secretsmanager", config))


def firehose(config: Config | None = None) -> Any:
    """Any: there are no firehose stubs in requirements-dev.txt (sklambda.capture types the one
    call it makes with its FirehoseClient protocol)."""
    return _client("firehose", config)


def serving_store(bucket: str) -> ModelStore:
    """The registry as the serving functions (predict, batch predict) read it: S3 with
    SERVING_S3_CONFIG's short timeouts and single retry, so a hanging S3 never holds a request."""
    return ModelStore(s3(SERVING_S3_CONFIG), bucket)


def serving_kms() -> KMSClient:
    """KMS as the serving functions use it (GetPublicKey, on the cold-start path when models
    are signed): the same short timeouts and single retry."""
    return kms(SERVING_S3_CONFIG)
