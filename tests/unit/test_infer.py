"""Config inference (training/infer.py): each column's type and decision on a generated wide table,
the rules one at a time on small tables, and a written config that load_config accepts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from sklambda.config import load_config
from sklambda.data import load_dataset, parse_csv, read_csv
from sklambda.errors import ConfigError
from sklambda.training import train
from tests.generated_tables import GeneratedTable, wide_housing_table
from tests.helpers import HOUSE_CSV
from training.infer import Inference, infer, render_config, write_config

pytestmark = pytest.mark.unit


def _table(columns: dict[str, list[str]]) -> bytes:
    names = list(columns)
    lines = [",".join(names)] + [
        ",".join(row) for row in zip(*(columns[n] for n in names), strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def _infer(columns: dict[str, list[str]], target: str = "y", **kwargs: str) -> Inference:
    return infer(parse_csv(_table(columns), "table.csv"), target, **kwargs)  # type: ignore[arg-type]


def _prices(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [str(int(v)) for v in np.round(np.exp(rng.normal(12, 0.4, n)), -2)]


@pytest.fixture(scope="module")
def wide() -> GeneratedTable:
    return wide_housing_table(rows=3_000, seed=12)


@pytest.fixture(scope="module")
def wide_inference(wide: GeneratedTable) -> Inference:
    return infer(parse_csv(wide.csv_bytes(), "wide.csv"), "price")


@pytest.mark.parametrize("column", list(wide_housing_table(rows=300, seed=12).columns))
def test_every_column_of_a_wide_table_gets_its_type_and_decision(column, wide, wide_inference):
    expected = wide.expected[column]
    report = wide_inference.column(column)
    assert (report.kind, report.decision) == (expected.kind, expected.decision)
    if expected.decision == "feature":
        assert report.required is expected.required  # required exactly when no cell is empty


def test_every_left_out_column_says_why(wide_inference):
    left_out = [c for c in wide_inference.columns if c.left_out]
    assert left_out and all(len(c.why) > 10 for c in left_out)


def test_a_positive_right_skewed_target_gets_a_log_transform(wide_inference):
    assert wide_inference.target.transform == "log"


def test_the_bundled_sales_get_the_textbook_specification(house_config):
    """Anglin & Gencay's hedonic model (training/configs/house_prices.toml): log price, log lot
    size, the other ten as they are; the unnamed row-number column left out."""
    inference = infer(read_csv(HOUSE_CSV), "price")
    assert inference.target.transform == "log"
    numeric = {"integer": "number"}  # the book's lot sizes are whole numbers of square feet
    assert [(f.name, numeric.get(f.kind, f.kind), f.transform) for f in inference.features] == [
        (f.name, numeric.get(f.type, f.type), f.transform) for f in house_config.features
    ]
    assert inference.column("").decision == "no name"
    assert inference.estimator.kind == "ridge"


def test_a_symmetric_target_keeps_its_scale():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 200)
    y = 100 + 10 * x + rng.normal(0, 8, 200)
    inference = _infer({"x": [f"{v:.3f}" for v in x], "y": [f"{v:.3f}" for v in y]})
    assert inference.target.transform == "none"


def test_a_wide_table_with_many_rows_and_empty_cells_gets_boosting(wide_inference):
    assert wide_inference.estimator.kind == "hist_gradient_boosting"
    assert "rows" in wide_inference.estimator.why


def test_a_small_table_gets_ridge_and_log_for_its_skewed_positive_feature():
    rng = np.random.default_rng(2)
    size = np.exp(rng.normal(4, 0.7, 120))
    rooms = rng.integers(1, 6, 120)
    price = np.round(1000 * size**0.6 * np.exp(rng.normal(0, 0.1, 120)))
    inference = _infer(
        {
            "size": [f"{v:.2f}" for v in size],
            "rooms": [str(v) for v in rooms],
            "y": [str(int(v)) for v in price],
        }
    )
    assert inference.estimator.kind == "ridge"
    assert inference.column("size").transform == "log"
    assert inference.column("rooms").transform == "none"  # a small count, not a skewed measure


@pytest.mark.parametrize(("rows", "folds"), [(49_999, 5), (50_000, 3)])
def test_cross_validation_takes_3_folds_from_50000_rows(rows, folds):
    x = [str(i % 97) for i in range(rows)]
    y = [str(1000 + (i * 7919) % 5003) for i in range(rows)]
    text = render_config(_infer({"x": x, "y": y}), "t.csv")
    assert tomllib.loads(text)["evaluation"]["cv_folds"] == folds


def test_a_wide_table_with_few_rows_still_gets_ridge():
    rng = np.random.default_rng(7)
    columns = {f"x{k}": [f"{v:.3f}" for v in rng.normal(0, 1, 300)] for k in range(25)}
    inference = _infer({**columns, "y": _prices(300)})
    assert len(inference.features) == 25
    assert inference.estimator.kind == "ridge"


def test_a_binning_of_the_target_is_left_out_as_leakage():
    y = _prices(200)
    band = ["low" if int(v) < 150_000 else "mid" if int(v) < 200_000 else "high" for v in y]
    noise = np.random.default_rng(3).choice(["a", "b", "c"], 200).tolist()
    inference = _infer({"band": band, "kind": noise, "y": y})
    assert inference.column("band").decision == "leakage"
    assert inference.column("kind").decision == "feature"


def test_a_unique_integer_measurement_is_kept_and_a_sequence_is_an_identifier():
    rng = np.random.default_rng(4)
    area = rng.permutation(np.arange(900, 3000, 7))[:60]  # unique per row, in no order
    inference = _infer(
        {
            "row": [str(i) for i in range(1, 61)],
            "area": [str(v) for v in area],
            "y": _prices(60),
        }
    )
    assert inference.column("row").decision == "identifier"
    assert inference.column("area").decision == "feature"


def test_unique_integers_named_as_a_key_are_an_identifier():
    codes = np.random.default_rng(8).permutation(np.arange(500_000, 900_000, 13))[:60]
    inference = _infer(
        {"customer_id": [str(v) for v in codes], "x": ["1", "2", "3"] * 20, "y": _prices(60)}
    )
    assert inference.column("customer_id").decision == "identifier"


def test_a_column_of_one_value_and_empty_cells_is_a_category():
    flag = ["Y" if i % 4 == 0 else "" for i in range(80)]
    inference = _infer({"pool": flag, "y": _prices(80)})
    report = inference.column("pool")
    assert (report.kind, report.decision, report.required) == ("category", "feature", False)


def test_categories_beyond_the_level_cap_are_left_out_and_those_within_keep_their_levels():
    rng = np.random.default_rng(5)
    many = [f"z{v}" for v in rng.integers(0, 120, 600)]
    few = rng.choice(["a", "b", "c", "d"], 600, p=[0.7, 0.2, 0.095, 0.005]).tolist()
    inference = _infer({"zip": many, "kind": few, "y": _prices(600)})
    assert inference.column("zip").decision == "too many levels"
    kind = inference.column("kind")
    assert kind.decision == "feature"
    assert "d" in kind.rare_levels  # fewer than 1% of rows: named in the config's comment


def test_a_column_with_no_name_is_left_out():
    inference = _infer({"": [str(i) for i in range(40)], "x": ["1", "2"] * 20, "y": _prices(40)})
    assert inference.column("").decision == "no name"


def test_a_regression_target_that_is_not_numeric_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match="--task classification"):
        _infer({"x": ["1", "2"] * 20, "y": ["yes", "no"] * 20})


def test_an_unknown_target_column_is_refused_naming_the_columns():
    with pytest.raises(ConfigError, match="no column 'price'.*x, y"):
        _infer({"x": ["1", "2"] * 20, "y": ["3", "4"] * 20}, target="price")


def test_empty_target_cells_are_a_warning():
    y = _prices(50)
    y[3] = ""
    inference = _infer({"x": [str(i % 7) for i in range(50)], "y": y})
    assert any("1 row" in w and "target" in w for w in inference.warnings)


def test_the_written_config_loads_and_lists_the_kept_features_with_their_decisions(
    tmp_path, wide, wide_inference
):
    (tmp_path / "data").mkdir()
    (tmp_path / "configs").mkdir()
    data = wide.write_csv(tmp_path / "data" / "wide.csv")
    out = tmp_path / "configs" / "wide.toml"
    out.write_text(render_config(wide_inference, "../data/wide.csv"), encoding="utf-8")
    config = load_config(out)
    assert Path(config.data.source) == data.resolve()
    assert config.target.name == "price" and config.target.transform == "log"
    kept = [name for name, e in wide.expected.items() if e.decision == "feature"]
    assert config.feature_names == kept
    by_name = {f.name: f for f in config.features}
    for name in kept:
        assert by_name[name].type == wide.expected[name].kind
        assert by_name[name].required is wide.expected[name].required
    assert config.estimator.kind == "hist_gradient_boosting"
    text = out.read_text()
    raw = tomllib.loads(text)  # the policies are written out, so a reader sees the choice
    assert (raw["unknown_categories"], raw["evaluation"]["final_fit"]) == ("reject", "train_split")
    for name, e in wide.expected.items():  # every left-out column is named, with its reason
        if e.decision not in ("feature", "target"):
            assert f"# {name}: {e.decision}" in text


def test_write_config_resolves_the_source_against_the_output_folder(tmp_path, wide):
    data = wide.write_csv(tmp_path / "wide.csv")
    out = tmp_path / "nested" / "configs" / "wide.toml"
    write_config(data, "price", out=out)
    raw = tomllib.loads(out.read_text())
    assert raw["data"]["source"] == "../../wide.csv"
    assert Path(load_config(out).data.source) == data.resolve()


def test_write_config_refuses_to_overwrite_unless_forced(tmp_path, wide):
    data = wide.write_csv(tmp_path / "wide.csv")
    out = tmp_path / "wide.toml"
    out.write_text("# mine\n")
    with pytest.raises(ConfigError, match="--force"):
        write_config(data, "price", out=out)
    assert out.read_text() == "# mine\n"
    write_config(data, "price", out=out, force=True)
    assert load_config(out).name == "wide"


def test_classification_writes_the_task_and_class_labels_and_the_config_trains(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, 100)
    churn = np.where(x + rng.normal(0, 0.5, 100) > 0, "yes", "no")
    data = tmp_path / "churn.csv"
    data.write_bytes(_table({"x": [f"{v:.3f}" for v in x], "churned": churn.tolist()}))
    out = tmp_path / "churn.toml"
    inference = write_config(data, "churned", task="classification", out=out)
    assert inference.classes == {
        "no": int((churn == "no").sum()),
        "yes": int((churn == "yes").sum()),
    }
    raw = tomllib.loads(out.read_text())
    assert raw["task"] == "classification"
    assert raw["target"] == {"name": "churned"}
    classes = next(line for line in out.read_text().splitlines() if line.startswith("# classes:"))
    assert '"no" (' in classes and '"yes" (' in classes
    config = load_config(out)
    assert config.task == "classification"
    assert config.estimator.kind == "logistic_regression"
    assert config.evaluation.primary_metric == "log_loss"
    result = train(config, load_dataset(config))
    assert result.classes == ["no", "yes"]
