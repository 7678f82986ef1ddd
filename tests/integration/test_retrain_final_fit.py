"""Retraining a model whose config says final_fit = "all_rows": the champion saw every row of
its data, so the gate cannot score it on holdout rows; it uses the champion's recorded holdout
and the run record says so."""

import json

import pytest

from sklambda.artifact import train_artifact
from sklambda.data import parse_csv, prepare
from sklambda.retrain import Retrainer, RetrainRequest
from tests.helpers import HOUSE_CSV
from training.cli import format_run

pytestmark = pytest.mark.integration

CSV = HOUSE_CSV.read_bytes()
DATA_KEY = "datasets/house-prices/windsor.csv"


def reordered(content: bytes) -> bytes:
    header, *body = content.decode().splitlines()
    return ("\n".join([header, *reversed(body)]) + "\n").encode()


def live(store, config, folder):
    data = prepare(config, parse_csv(CSV, "data.csv"))
    manifest = store.publish(train_artifact(config, data, folder).folder)
    store.promote(manifest.name, manifest.version)
    return manifest


def all_rows(config):
    evaluation = config.evaluation.model_copy(update={"final_fit": "all_rows"})
    return config.model_copy(update={"evaluation": evaluation})


def test_an_all_rows_champion_is_compared_by_its_recorded_holdout_and_the_record_says_so(
    store, s3, bucket, house_config, tmp_path
):
    champion = live(store, all_rows(house_config), tmp_path / "champion")
    assert champion.final_fit == "all_rows"
    s3.put_object(Bucket=bucket, Key=DATA_KEY, Body=reordered(CSV))
    record = Retrainer(store).run(RetrainRequest(model="house-prices"))
    assert record.status == "promoted", record.reason
    saved = json.loads(
        s3.get_object(Bucket=bucket, Key=f"models/house-prices/runs/{record.run_id}.json")[
            "Body"
        ].read()
    )
    assert saved["champion"]["holdout"] == champion.metrics["holdout"]
    assert saved["champion"]["scored_on"] == "recorded_holdout"
    assert "final_fit all_rows" in saved["champion"]["scoring"]
    assert "champion scored by its holdout metrics recorded when it was trained" in format_run(
        saved
    )
    # The challenger inherits the config: it is refitted on every row too, and says so.
    assert saved["challenger"]["final_fit"] == "all_rows"
    assert store.manifest("house-prices", saved["challenger"]["version"]).final_fit == "all_rows"


def test_a_train_split_champion_is_scored_on_the_new_holdout_rows(
    store, s3, bucket, house_config, tmp_path
):
    live(store, house_config, tmp_path / "champion")
    s3.put_object(Bucket=bucket, Key=DATA_KEY, Body=reordered(CSV))
    record = Retrainer(store).run(RetrainRequest(model="house-prices"))
    assert record.champion["scored_on"] == "new_holdout"
    assert record.challenger["final_fit"] == "train_split"
