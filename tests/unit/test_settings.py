"""Typed settings: every variable a function reads is declared in template.yaml for it, read in
one module only, and parsed (or refused) the same way everywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cfnlint.decode import decode

from sklambda.errors import ConfigError
from sklambda.settings import (
    DEFAULT_ALIAS,
    BatchSettings,
    MonitorSettings,
    PreTrafficSettings,
    RetrainSettings,
    ServingSettings,
)
from tests.helpers import ROOT

pytestmark = pytest.mark.unit

FUNCTIONS = {
    "PredictFunction": ServingSettings,
    "RetrainFunction": RetrainSettings,
    "MonitorFunction": MonitorSettings,
    "BatchPredictFunction": BatchSettings,
    "PreTrafficHookFunction": PreTrafficSettings,
}


def declared_variables(function: str) -> set[str]:
    template, matches = decode(str(ROOT / "template.yaml"))
    assert not matches and template is not None
    env = template["Resources"][function]["Properties"].get("Environment", {})
    return set(env.get("Variables", {}))


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_variable_a_function_reads_is_declared_in_the_template(function: str) -> None:
    # SAM passes a function only the variables the template declares: an undeclared one can
    # never be set by a deploy or by `sam local --env-vars`.
    missing = FUNCTIONS[function].variables() - declared_variables(function)
    assert not missing, f"{function} reads {sorted(missing)} but template.yaml does not declare it"


def _reads_environment(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_settings_module_reads_the_environment() -> None:
    sources = [*(ROOT / "layers/ml/sklambda").glob("*.py"), *(ROOT / "functions").rglob("*.py")]
    readers = [
        hit for path in sources if path.name != "settings.py" for hit in _reads_environment(path)
    ]
    assert readers == [], "read environment variables in sklambda/settings.py only"


def test_an_empty_variable_means_the_default() -> None:
    # `!Ref` of an empty template parameter gives "", as ModelVersion and PromotionFloor do.
    settings = ServingSettings.from_env(
        {"MODEL_BUCKET": "b", "MODEL_VERSION": "", "MODEL_ALIAS": ""}
    )
    assert (settings.bucket, settings.version, settings.alias) == ("b", "", DEFAULT_ALIAS)
    assert RetrainSettings.from_env({"PROMOTION_FLOOR": ""}).floor is None


def test_values_are_parsed_to_their_types() -> None:
    settings = ServingSettings.from_env(
        {
            "MODEL_REFRESH_SECONDS": "0",
            "MAX_BATCH_ROWS": "25",
            "MAX_BODY_BYTES": "1000",
            "MODEL_CACHE_DIR": "/tmp/x",
            "MODEL_FORMAT": "joblib",
        }
    )
    assert settings.refresh_seconds == 0.0 and settings.max_rows == 25
    assert settings.max_body_bytes == 1000 and settings.cache_dir == Path("/tmp/x")
    assert settings.model_format == "joblib"
    retrain = RetrainSettings.from_env({"PROMOTION_TOLERANCE": "0.05", "PROMOTION_FLOOR": "0.5"})
    assert (retrain.tolerance, retrain.floor) == (0.05, 0.5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MAX_BATCH_ROWS", "many"), ("MAX_BATCH_ROWS", "0"), ("MODEL_FORMAT", "onnx")],
)
def test_an_invalid_value_is_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServingSettings.from_env({variable: value})
    assert caught.value.details[0].field == variable


def test_variables_of_other_functions_are_ignored() -> None:
    assert ServingSettings.from_env({"PROMOTION_FLOOR": "0.5"}) == ServingSettings()
