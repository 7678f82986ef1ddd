"""train() fits what the config says or nothing: a Dataset prepared for another config (its
schema, not the config, is what the model is fitted on and the manifest publishes) is refused."""

from __future__ import annotations

from typing import Any

import pytest

from sklambda.config import ModelConfig, parse_config
from sklambda.data import Dataset, parse_csv, prepare
from sklambda.errors import ConfigError
from sklambda.training import train
from tests.helpers import UNSEEN_CSV

pytestmark = pytest.mark.unit


def changed(config: ModelConfig, index: int, **update: Any) -> ModelConfig:
    features = list(config.features)
    features[index] = features[index].model_copy(update=update)
    return config.model_copy(update={"features": tuple(features)})


def test_a_config_with_a_feature_fewer_is_refused(house_config, house_dataset: Dataset) -> None:
    # GIVEN the house dataset, prepared for all the house features
    other = house_config.model_copy(update={"features": house_config.features[:-1]})
    dropped = house_config.features[-1].name
    # WHEN a config without the last one trains on it THEN nothing is fitted
    with pytest.raises(ConfigError, match="prepared for another config") as caught:
        train(other, house_dataset)
    assert [(p.field, p.message) for p in caught.value.details] == [
        (dropped, "in the dataset, not in the config")
    ]


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"transform": "none"}, "transform none in the config, log in the dataset"),
        ({"required": False}, "required False in the config, True in the dataset"),
        ({"type": "integer"}, "type integer in the config, number in the dataset"),
    ],
)
def test_a_feature_prepared_otherwise_is_refused(
    house_config, house_dataset: Dataset, update: dict[str, Any], message: str
) -> None:
    first = house_config.features[0]  # lotsize: a required number, log-transformed
    assert (first.type, first.transform, first.required) == ("number", "log", True)
    with pytest.raises(ConfigError, match="prepared for another config") as caught:
        train(changed(house_config, 0, **update), house_dataset)
    assert [(p.field, p.message) for p in caught.value.details] == [(first.name, message)]


def test_features_in_another_order_are_refused(house_config, house_dataset: Dataset) -> None:
    # The columns of X are in the schema's order: another order would fit each to another name.
    other = house_config.model_copy(update={"features": house_config.features[::-1]})
    with pytest.raises(ConfigError, match="in another order"):
        train(other, house_dataset)


def test_another_unknown_category_policy_is_refused() -> None:
    # The policy is recorded on each category of the schema, and published in the manifest.
    config = parse_config(
        {
            "name": "rents",
            "target": {"name": "rent"},
            "features": [{"name": "size"}, {"name": "kind", "type": "category"}],
        }
    )
    dataset = prepare(config, parse_csv(UNSEEN_CSV.encode(), "rents.csv"))
    warn = config.model_copy(update={"unknown_categories": "warn"})
    with pytest.raises(ConfigError, match="prepared for another config") as caught:
        train(warn, dataset)
    assert [(p.field, p.message) for p in caught.value.details] == [
        ("kind", "unknown_categories warn in the config, reject in the dataset")
    ]
