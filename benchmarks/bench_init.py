"""init + train on generated wide tables (tests/generated_tables.py: 80 columns of house sales with
empty cells, identifiers, free text and a leakage column) at 3,000 and 100,000 rows, in process,
through the functions `python -m training init` and `train` call: how each phase's time grows
with the rows.

Model fits run on one OpenMP thread. The benchmark machine is shared: with other jobs on its 2
CPUs, hist_gradient_boosting's two spin-waiting OpenMP threads ran one fit 15x slower (71 s
against 3.5 s on one thread, 5 s with OMP_WAIT_POLICY=passive), which measures the neighbours,
not the code. (Lambda gives a function one vCPU up to 1,769 MB of memory.)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from benchmarks.common import WORK, load_average
from sklambda.artifact import train_artifact
from sklambda.config import load_config
from sklambda.data import load_dataset
from tests.generated_tables import wide_housing_table
from training.infer import write_config

SIZES = (3_000, 100_000)
MIB = 2**20


@contextmanager
def _timed(figures: dict[str, Any], phase: str) -> Iterator[None]:
    """Wall and CPU seconds of a phase: on a shared machine the wall time also holds the waits
    for a CPU, while the CPU time is the work itself."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    figures[f"{phase}_s"] = time.perf_counter() - wall
    figures[f"{phase}_cpu_s"] = time.process_time() - cpu


def one_table(rows: int) -> dict[str, Any]:
    """Generate the table, then init (read + infer + write the config), then train as the CLI
    does: read and validate, k-fold CV and the final fit, write the artifact."""
    folder = WORK / "init" / f"rows-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    table = wide_housing_table(rows=rows, seed=12)
    csv = table.write_csv(folder / "wide_sales.csv")
    config_file = folder / "wide-sales.toml"
    f: dict[str, Any] = {"rows": rows, "columns": len(table.columns)}
    f["csv_mib"] = csv.stat().st_size / MIB
    with _timed(f, "init"):
        inference = write_config(csv, table.target, out=config_file, force=True)
    config = load_config(config_file)
    with _timed(f, "read"):
        dataset = load_dataset(config)
    with (
        _timed(f, "train"),
        warnings.catch_warnings(),
        threadpool_limits(limits=1, user_api="openmp"),
    ):
        warnings.simplefilter("ignore", UserWarning)  # unknown categories: empty cells (issue 12)
        trained = train_artifact(config, dataset, folder / "artifact")
    f["total_s"] = f["init_s"] + f["read_s"] + f["train_s"]
    f["total_cpu_s"] = f["init_cpu_s"] + f["read_cpu_s"] + f["train_cpu_s"]
    metrics = trained.manifest.metrics
    f |= {
        "features": len(inference.features),
        "estimator": config.estimator.kind,
        "cv_folds": config.evaluation.cv_folds,
        "cv_r2": metrics["cv"]["r2"]["mean"],
        "holdout_r2": metrics["holdout"]["r2"],
    }
    return f


def main() -> dict[str, Any]:
    load_before = load_average()
    figures: dict[str, Any] = {f"rows_{rows}": one_table(rows) for rows in SIZES}
    figures["load"] = f"{load_before} before, {load_average()} after"
    return figures


if __name__ == "__main__":
    for name, figures in main().items():
        if not isinstance(figures, dict):
            print(f"{name}: {figures}")
            continue
        print(name)
        for key, value in figures.items():
            shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
            print(f"  {key:<12} {shown}")
