"""Unit fixtures: the predict handler serving the default model, loaded in process (no S3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
from aws_lambda_powertools.metrics.provider import cold_start

import predict_handler
from sklambda.manifest import Manifest
from sklambda.model import LoadedModel


@pytest.fixture
def loaded(trained_dir: Path, manifest: Manifest) -> Iterator[LoadedModel]:
    model = LoadedModel(manifest, joblib.load(trained_dir / "model.joblib"))
    predict_handler.holder.use(model)
    yield model
    predict_handler.holder.reset()
    predict_handler.metrics.clear_metrics()
    cold_start.is_cold_start = True
