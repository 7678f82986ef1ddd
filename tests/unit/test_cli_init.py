"""`python -m training init`: a config from a CSV alone that `train` takes with no edits and that
scores close to a config written by hand; a summary table; no overwrite without --force."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tests.generated_tables import hand_config, wide_housing_table
from training.cli import main

pytestmark = pytest.mark.unit


def _train(config: Path, out: Path) -> dict[str, float]:
    # One OpenMP thread: on a machine shared with other jobs, boosting's spin-waiting threads
    # run many times slower (see benchmarks/bench_init.py); the scores do not depend on it.
    with threadpool_limits(limits=1, user_api="openmp"):
        assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    return {"cv": metrics["cv"]["r2"]["mean"], "holdout": metrics["holdout"]["r2"]}


@pytest.fixture(scope="module")
def wide_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wide")
    return wide_housing_table(rows=3_000, seed=12).write_csv(folder / "wide_sales.csv")


def test_init_then_train_with_no_edits_scores_close_to_a_hand_written_config(
    wide_csv, tmp_path, capsys
):
    """GIVEN a wide table (80 columns, empty cells, ids, free text, a leakage column)
    WHEN init writes a config and train runs it unedited
    THEN its R² is within 0.03 of the best config written knowing how the prices were made."""
    generated = tmp_path / "configs" / "wide-sales.toml"
    assert (
        main(["init", "--data", str(wide_csv), "--target", "price", "--out", str(generated)]) == 0
    )
    by_init = _train(generated, tmp_path / "init")
    hand = tmp_path / "hand.toml"
    best = {"cv": -np.inf, "holdout": -np.inf}
    for kind, params in (("ridge", "{ alpha = 1.0 }"), ("hist_gradient_boosting", "{}")):
        hand.write_text(hand_config(wide_csv, kind, params))
        scores = _train(hand, tmp_path / kind)
        best = max(best, scores, key=lambda s: s["cv"])
    capsys.readouterr()
    print(f"R² cv/holdout: init {by_init}, hand-written {best}")  # shown with pytest -s
    assert by_init["cv"] >= best["cv"] - 0.03
    assert by_init["holdout"] >= best["holdout"] - 0.03


def test_init_prints_one_row_per_column_as_plain_text_when_piped(wide_csv, tmp_path, capsys):
    out = tmp_path / "wide.toml"
    assert main(["init", "--data", str(wide_csv), "--target", "price", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text
    header = next(line for line in text.splitlines() if line.split()[:1] == ["column"])
    assert header.split() == ["column", "type", "missing", "levels", "or", "range", "decision"]
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "identifier" in rows["parcel"]
    assert "leakage" in rows["assessed_value"]
    assert "81.1%" in rows["corner_lot"]  # share of empty cells
    assert "target" in rows["price"] and "log" in rows["price"]
    assert f"train --config {out}" in text  # the next command to run


def test_init_refuses_to_overwrite_a_config_without_force(wide_csv, tmp_path, capsys):
    out = tmp_path / "wide.toml"
    out.write_text("# hand-tuned\n")
    argv = ["init", "--data", str(wide_csv), "--target", "price", "--out", str(out)]
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "# hand-tuned\n"
    assert main([*argv, "--force"]) == 0
    assert out.read_text().startswith("# Written by")


def test_init_for_classification_says_train_refuses_it_until_issue_13(tmp_path, capsys):
    data = tmp_path / "churn.csv"
    rows = [f"{i % 9},{'yes' if i % 3 == 0 else 'no'}" for i in range(60)]
    data.write_text("tenure,churned\n" + "\n".join(rows) + "\n")
    out = tmp_path / "churn.toml"
    argv = ["init", "--data", str(data), "--target", "churned", "--task", "classification"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert 'task = "classification"' in out.read_text()
    assert "issue 13" in text and "classes" in text
