"""The arithmetic of the batch transform's AWS projection (benchmarks/bench_batch.py), on round
figures, and the generated input it measures with: the projection in RESULTS.md and
docs/batch.md is only as good as these."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks import bench_batch
from benchmarks.bench_batch import ASSUMPTIONS, PRICES, project

pytestmark = pytest.mark.unit


def test_the_projection_counts_children_transitions_and_gb_seconds() -> None:
    # GIVEN batches of 1,000 rows that take 0.1 s on one local core
    g = project({"rows_per_batch": 1000, "batch_p50_s": 0.1}, bytes_per_row=50, max_concurrency=100)
    ten = g["rows"][10_000_000]
    # THEN 10,000 child executions, each two Standard transitions, plus the job's four
    assert ten["batches"] == 10_000
    assert ten["cost"]["sfn_standard"] == pytest.approx(20_004 * 0.025 / 1000)
    # Lambda at 1,024 MB has 1024/1769 of a vCPU: 0.1 s becomes 0.1 * 1769 / 1024 s
    lambda_s = 0.1 * 1769 / 1024
    assert g["lambda_batch_s"] == pytest.approx(lambda_s)
    gb_s = 10_000 * lambda_s + 100 * ASSUMPTIONS["cold_start_s"]
    assert ten["cost"]["lambda_duration"] == pytest.approx(gb_s * PRICES["lambda_gb_s"].usd)
    assert ten["cost"]["lambda_requests"] == pytest.approx(10_002 * 0.20 / 1e6)
    # wall time: 100 rounds of 100 children, each the batch plus the child's start
    per_batch = lambda_s + ASSUMPTIONS["child_overhead_s"]
    fixed = ASSUMPTIONS["job_overhead_s"] + ASSUMPTIONS["cold_start_s"]
    assert ten["wall_s"]["100"] == pytest.approx(100 * per_batch + fixed)
    assert ten["wall_s"]["1000"] == pytest.approx(10 * per_batch + fixed)
    assert ten["total"] == pytest.approx(sum(ten["cost"].values()))


def test_sagemaker_does_the_same_work_per_row_on_each_vcpu_plus_its_startup() -> None:
    g = project({"rows_per_batch": 1000, "batch_p50_s": 0.1}, bytes_per_row=50, max_concurrency=100)
    hundred = g["rows"][100_000_000]
    assert hundred["sagemaker_rows_per_s"] == pytest.approx(2 * 1000 / 0.1)
    hours = (100_000_000 / 20_000 + ASSUMPTIONS["sagemaker_startup_s"]) / 3600
    assert hundred["sagemaker_cost"] == pytest.approx(hours * 0.115)


def test_the_generated_input_breaks_every_997th_row_and_says_which(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    bad = bench_batch.generate(2_000, path)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "" and len(rows) == 2_001  # the bundled header: its first cell is empty
    assert bad == {998, 1995}  # CSV lines (header = 1) of rows 997 and 1994
    assert all(("??" in rows[line - 1]) == (line in bad) for line in range(2, 2_002))
