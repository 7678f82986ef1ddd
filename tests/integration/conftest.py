"""Integration fixtures: a moto S3 server over HTTP (AWS_ENDPOINT_URL points at it), a fresh
versioned bucket per test, and the registry on it."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from sklambda.store import ModelStore


@pytest.fixture
def s3_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, versioned bucket per test."""
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def store(s3: Any, bucket: str) -> ModelStore:
    return ModelStore(s3, bucket)


@pytest.fixture
def capture_stream(s3_endpoint: str, bucket: str) -> str:
    """A (moto) Firehose delivery stream into the bucket's capture/house-prices/, as the
    template's CaptureStream; its name."""
    stream = f"capture-{uuid.uuid4().hex[:8]}"
    boto3.client("firehose", endpoint_url=s3_endpoint).create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "capture/house-prices/",
        },
    )
    return stream
