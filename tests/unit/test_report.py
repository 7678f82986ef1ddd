"""The model report (training/report.py): `train` writes one self-contained page beside the
artifact, with the metrics, the holdout's plots, the feature effects, the data summary and a
model card; its images are inline PNGs and nothing is fetched; matplotlib never enters the
Lambda layer."""

from __future__ import annotations

import ast
import base64
import importlib.util
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sklambda.artifact import TrainedArtifact, train_artifact
from sklambda.config import CardConfig, ModelConfig, parse_config
from sklambda.data import Dataset, parse_csv, prepare
from sklambda.errors import ConfigError
from tests.helpers import HOUSE_CONFIG, ROOT, rents_config, rents_csv
from training import report
from training.cli import format_metric, main
from training.report import REPORT_FILE, Rows, classification_plots, encoded_names, render

pytestmark = pytest.mark.unit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What the Lambda layer is built from, and what runs in Lambda: none of it may use matplotlib.
LAYER_SOURCES = (ROOT / "layers" / "ml", ROOT / "functions")


def png_sizes(page: str) -> list[tuple[int, int]]:
    """(width, height) of every <img> of the page, each of which must be an inline PNG."""
    sources = re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)
    sizes = []
    for source in sources:
        assert source.startswith("data:image/png;base64,"), source[:40]
        data = base64.b64decode(source.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        sizes.append(struct.unpack(">II", data[16:24]))  # the IHDR chunk: width, height
    return sizes


def _train(config: ModelConfig, dataset: Dataset, folder: Path) -> TrainedArtifact:
    return train_artifact(config, dataset, folder / config.name)


@pytest.fixture(scope="module")
def house(
    tmp_path_factory: pytest.TempPathFactory, house_config: ModelConfig, house_dataset: Dataset
) -> TrainedArtifact:
    return _train(house_config, house_dataset, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def house_page(house: TrainedArtifact, house_config: ModelConfig, house_dataset: Dataset) -> str:
    return report.write_report(house, house_config, house_dataset).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rents() -> Dataset:
    config = rents_config()
    return prepare(config, parse_csv(rents_csv().encode(), "rents.csv"))


def _rows(trained: TrainedArtifact, dataset: Dataset) -> Rows:
    holdout = trained.result.holdout_rows
    return Rows(dataset.X[holdout], dataset.y[holdout], in_sample=False)


# --- train writes it ------------------------------------------------------------------------


def test_train_writes_report_html_beside_the_artifact_and_says_where(tmp_path, capsys):
    out = tmp_path / "house-prices"
    assert main(["train", "--config", str(HOUSE_CONFIG), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (out / REPORT_FILE).is_file()
    assert f"wrote {out / REPORT_FILE} (" in printed
    # The manifest (signed at publish) records nothing of the report.
    assert "report" not in (out / "manifest.json").read_text()


def test_train_without_matplotlib_says_there_is_no_report(
    house, house_config, house_dataset, monkeypatch
):
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "matplotlib" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    (house.folder / REPORT_FILE).unlink(missing_ok=True)
    line = report.report_after_training(house, house_config, house_dataset)
    assert line.startswith("no report.html: matplotlib is not installed")
    assert not (house.folder / REPORT_FILE).exists()


# --- the page -------------------------------------------------------------------------------


def test_report_has_every_section_in_order(house_page):
    headings = re.findall(r"<h2>([^<]*)</h2>", house_page)
    assert headings == ["Metrics", "Holdout", "Feature effects", "Data", "Model card"]


def test_every_image_is_an_inline_png_with_a_size(house_page):
    sizes = png_sizes(house_page)
    # actual vs predicted, residuals, coefficients (a linear model), permutation importance
    assert len(sizes) == 4
    assert all(width > 100 and height > 100 for width, height in sizes)
    for title in ("Actual vs predicted", "Residuals", "Coefficients", "Permutation importance"):
        assert f'alt="{title}"' in house_page


def test_report_runs_no_script_and_fetches_nothing(house_page):
    assert "<script" not in house_page.lower()
    assert "Content-Security-Policy" in house_page and "default-src 'none'" in house_page
    for attribute in re.findall(r"(?:src|href)=\"([^\"]*)\"", house_page):
        assert attribute.startswith("data:image/png;base64,")


def test_report_page_stays_small(house_page):
    assert len(house_page.encode()) < 250_000


def test_metrics_table_shows_the_manifests_figures_primary_in_bold(house, house_page):
    metrics = house.manifest.metrics
    primary = re.search(r'<tr class="primary">(.*?)</tr>', house_page)
    assert primary is not None
    cells = re.findall(r"<td>([^<]*)</td>", primary.group(1))
    assert cells[0] == "r2"
    assert format_metric("r2", metrics["holdout"]["r2"]) in cells
    assert format_metric("r2", metrics["cv"]["r2"]["mean"]) in cells
    assert format_metric("rmse", metrics["holdout"]["rmse"]) in house_page
    assert "r2_log" in house_page and "log(price)" in house_page


def test_data_summary_lists_every_feature_with_its_training_distribution(house, house_page):
    data = house_page.split("<h2>Data</h2>", 1)[1].split("<h2>", 1)[0]
    for feature in house.manifest.features:
        assert f"<td>{feature['name']}</td>" in data
    assert "<td>(prediction)</td>" in data
    assert "median" in data and "true" in data and "false" in data


def test_model_card_has_provenance_library_versions_and_says_what_is_not_stated(house, house_page):
    card = house_page.split("<h2>Model card</h2>", 1)[1]
    manifest = house.manifest
    assert manifest.data.sha256 in card
    assert manifest.artifact.sha256 in card
    assert f"scikit-learn {manifest.runtime['scikit-learn']}" in card
    assert "matplotlib (this report) " in card
    assert "not stated (the config&#x27;s [card] intended_use)" in card


def test_model_card_shows_the_configs_card_escaped(house, house_config, house_dataset):
    card = CardConfig(
        intended_use="Pricing <b>Windsor</b> houses, 1987",
        limitations="Not for other cities.",
        owner="pricing team",
    )
    config = house_config.model_copy(update={"card": card})
    page = render(house.manifest, config, house.result.model, _rows(house, house_dataset))
    assert "Pricing &lt;b&gt;Windsor&lt;/b&gt; houses, 1987" in page
    assert "Not for other cities." in page and "pricing team" in page


def test_card_table_is_read_from_the_config_and_unknown_keys_are_refused():
    raw = {"name": "m", "target": {"name": "y"}, "features": [{"name": "x"}]}
    config = parse_config({**raw, "card": {"intended_use": "demos", "limitations": "toy"}})
    assert config.card.intended_use == "demos" and config.card.owner == ""
    assert parse_config(raw).card == CardConfig()
    with pytest.raises(ConfigError) as caught:
        parse_config({**raw, "card": {"intended_usage": "typo"}})
    assert [d.field for d in caught.value.details] == ["card.intended_usage"]


def test_all_rows_fit_says_the_plotted_rows_were_seen(house, house_config, house_dataset):
    holdout = house.result.holdout_rows
    rows = Rows(house_dataset.X[holdout], house_dataset.y[holdout], in_sample=True)
    page = render(house.manifest, house_config, house.result.model, rows)
    assert "rows it was fitted on (final_fit all_rows)" in page
    assert "unseen rows" not in page


# --- feature effects ------------------------------------------------------------------------


def test_encoded_names_name_category_levels_and_missing_indicators(tmp_path, rents):
    trained = _train(rents_config(), rents, tmp_path)
    names = encoded_names(trained.result.model, trained.manifest)
    assert "size" in names
    assert "kind=house" in names and "kind=loft" in names  # kind=flat: the dropped reference
    assert "heating=(missing)" in names
    assert "floor missing" in names and "garden missing" in names
    assert not any(re.fullmatch(r"x\d+.*", name) for name in names)


def test_a_tree_model_shows_impurity_importance_instead_of_coefficients(tmp_path, rents):
    config = rents_config(
        estimator={"kind": "random_forest", "params": {"n_estimators": 20, "max_depth": 4}}
    )
    trained = _train(config, rents, tmp_path)
    page = render(trained.manifest, config, trained.result.model, _rows(trained, rents))
    assert 'alt="Impurity importance"' in page and 'alt="Permutation importance"' in page
    assert 'alt="Coefficients"' not in page
    assert len(png_sizes(page)) == 4


# --- classification -------------------------------------------------------------------------


def _classifier(classes: int, labels: list[Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    """A fitted pipeline shaped like training's (prep + model) on a generated problem, and its
    held-out rows with their labels."""
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, codes = make_classification(
        n_samples=400,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=classes,
        random_state=0,
    )
    # As sklambda.classes.read_labels reads them: integers as int64, other labels as objects.
    kind = np.int64 if isinstance(labels[0], int) else object
    y = np.asarray(labels, dtype=kind)[codes]
    prep = ColumnTransformer(
        [("num", "passthrough", [0, 1, 2, 3])], verbose_feature_names_out=False
    )
    model = Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(X[:300], y[:300])
    return model, X[300:], y[300:]


@pytest.mark.parametrize(
    "labels", [["no", "yes"], [0, 1], ["adelie", "chinstrap", "gentoo"]], ids=str
)
def test_classification_plots_draw_a_confusion_matrix_roc_and_calibration(labels):
    model, X, y = _classifier(len(labels), labels)
    plots = classification_plots(y, model.predict(X), model.predict_proba(X), model.classes_, "n")
    assert [p.title for p in plots] == ["Confusion matrix", "ROC and calibration"]
    assert len(png_sizes("".join(p.html() for p in plots))) == 2


def test_a_classifiers_page_has_its_plots_and_coefficients(house, house_config):
    from sklambda.manifest import ClassInfo

    labels = ["no", "yes"]
    model, X, y = _classifier(2, labels)
    manifest = house.manifest.model_copy(
        update={
            "task": "classification",
            "classes": ClassInfo(labels=labels, counts=[150, 150]),
            "features": [{"name": f"f{i}", "type": "number"} for i in range(4)],
            "target": house.manifest.target.model_copy(
                update={"name": "bought", "transform": "none"}
            ),
            "metrics": {"primary": "log_loss", "holdout": {"accuracy": 0.9, "log_loss": 0.3}},
            "profile": None,
        }
    )
    page = render(manifest, house_config, model, Rows(X, y, in_sample=False))
    for title in (
        "Confusion matrix",
        "ROC and calibration",
        "Coefficients",
        "Permutation importance",
    ):
        assert f'alt="{title}"' in page
    assert "Actual vs predicted" not in page
    assert len(png_sizes(page)) == 4
    assert "log-odds of bought = yes" in page
    assert "<td>accuracy</td>" in page and "<td>0.9000</td>" in page


# --- matplotlib stays out of the Lambda layer -----------------------------------------------


def matplotlib_uses(*roots: Path) -> list[str]:
    """Every import of matplotlib in Python files under `roots`, and every requirements line
    naming it, as "path:line"."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                modules = []
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    modules = [node.module]
                if any(m.split(".")[0] == "matplotlib" for m in modules):
                    found.append(f"{path}:{node.lineno}")
        for path in sorted(root.rglob("requirements*.txt")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                package = re.split(r"[\s=<>!~;\[#]", line.strip(), maxsplit=1)[0].lower()
                if package == "matplotlib":
                    found.append(f"{path}:{number}")
    return found


def test_matplotlib_never_enters_the_lambda_layer_or_the_functions():
    assert matplotlib_uses(*LAYER_SOURCES) == []


def test_the_layer_check_finds_a_matplotlib_import_or_requirement(tmp_path):
    (tmp_path / "plots.py").write_text("import numpy\nfrom matplotlib.figure import Figure\n")
    (tmp_path / "requirements.txt").write_text("numpy==2.4.6\nmatplotlib==3.11.2\n")
    assert matplotlib_uses(tmp_path) == [
        f"{tmp_path / 'plots.py'}:2",
        f"{tmp_path / 'requirements.txt'}:2",
    ]


def test_the_cli_and_the_artifact_writer_import_no_matplotlib():
    # Only drawing a plot imports it: `publish`, `report` and sklambda start without it.
    code = (
        "import sys, training.cli, training.report, sklambda.artifact, sklambda.store; "
        "print('matplotlib' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={"PYTHONPATH": f"{ROOT / 'layers' / 'ml'}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip() == "False"
