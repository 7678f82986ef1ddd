"""AWS clients are made once per container, per service and config (sklambda.clients)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sklambda import clients
from sklambda.store import SERVING_S3_CONFIG

pytestmark = pytest.mark.unit


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The services boto3 was asked to make a client for."""
    services: list[str] = []
    real = boto3.client

    def counting(service: str, **kwargs: Any) -> Any:
        services.append(service)
        return real(service, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(boto3, "client", counting)
    return services


def test_a_client_is_made_once_per_service_and_config(made: list[str]) -> None:
    assert clients.s3() is clients.s3()
    assert clients.serving_store("a").s3 is clients.serving_store("b").s3 is not clients.s3()
    assert clients.serving_kms() is clients.kms(SERVING_S3_CONFIG) is not clients.kms()
    assert clients.s3(Config(read_timeout=1)) is not clients.s3(Config(read_timeout=1))
    assert sorted(made) == ["kms", "kms", "s3", "s3", "s3", "s3"]


def test_capture_clients_are_made_under_the_lock_once(made: list[str]) -> None:
    config = Config(read_timeout=1)
    assert clients.firehose(config) is clients.firehose(config)
    assert clients.secretsmanager(config) is clients.secretsmanager(config)
    assert sorted(made) == ["firehose", "secretsmanager"]


def test_the_predict_function_makes_its_capture_clients_through_clients(
    made: list[str],
) -> None:
    import predict_handler

    predict_handler.capture._firehose_factory()
    assert predict_handler.capture._secrets_factory is not None
    predict_handler.capture._secrets_factory()
    assert predict_handler.capture._firehose_factory() is clients.firehose(
        predict_handler.CAPTURE_CONFIG
    )
    assert sorted(made) == ["firehose", "secretsmanager"]


def test_clear_makes_the_next_call_make_a_new_client(made: list[str]) -> None:
    first = clients.s3()
    clients.clear()
    assert clients.s3() is not first
    assert made == ["s3", "s3"]


def test_threads_asking_at_once_share_one_client(made: list[str]) -> None:
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(clients.kms())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(client is got[0] for client in got)
    assert made == ["kms"]
