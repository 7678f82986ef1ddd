"""Batch transform (issue 15): generated CSVs of house sales scored through `make batch`'s code
path: the state machine's own definition run by tools/local/statemachine.py's interpreter, the
template's BatchPredictFunction in RIE processes (tools.local's LocalApi: the real Python
runtime client, one process per concurrent batch), a moto S3 server on 127.0.0.1. One batch is
a Distributed Map batch as the definition's ItemBatcher makes it (200,000 bytes of items); its
round trip is the function's invoke (items in, validation, scoring, parts written to S3).

Every job asserts that every row is accounted for: the out/ and rejected/ parts in S3 hold each
input line exactly once (out + rejected = in), the rejected lines are exactly the broken rows
the generator wrote (one in 997), and _SUCCESS.json says the same. 10,000 and 100,000 rows run
by default (about a minute); BENCH_BATCH_ROWS=10000,100000,1000000 adds the 1,000,000-row file
(the section then took 7 minutes on a shared 2-CPU machine), whose figures docs/batch.md records.

The projection prices scoring 10 and 100 million rows on AWS from the measured batch round
trip, at the map's MaxConcurrency, beside SageMaker Batch Transform on one ml.m5.large; every
price and assumption is in PRICES and ASSUMPTIONS below, and docs/batch.md explains them.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import math
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from benchmarks.common import ENV_VARS, TEMPLATE, WORK, load_average, percentile
from tests.helpers import HOUSE_CSV
from tools.local.runner import LocalApi
from tools.local.statemachine import DEFINITION, StateMachine, load_definition, through_runner

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SIZES = (10_000, 100_000)
ROWS_ENV = "BENCH_BATCH_ROWS"  # e.g. 10000,100000,1000000
CONCURRENCY = 4  # make batch's default (CONCURRENCY=4): the function processes at once
SINGLE_ROWS = 10_000  # the file whose batches are timed one at a time (concurrency 1)
BAD_EVERY = 997  # every 997th generated row has a broken value: it must come back rejected
DATA = WORK / "batch"


def sizes() -> tuple[int, ...]:
    raw = os.environ.get(ROWS_ENV, "").strip()
    return tuple(int(part) for part in raw.split(",") if part.strip()) if raw else SIZES


# --- the input ------------------------------------------------------------------------------


def generate(rows: int, path: Path) -> set[int]:
    """`rows` sales drawn (seeded) from the bundled data, with its header (whose first cell is
    empty: the row-id column); every BAD_EVERY-th row has a broken lotsize, airco or bedrooms.
    Returns the CSV lines (header = 1) of the broken rows."""
    with HOUSE_CSV.open(newline="") as f:
        reader = csv.reader(f)
        header, source = next(reader), list(reader)
    rng = random.Random(15)
    broken_columns = [header.index(name) for name in ("lotsize", "airco", "bedrooms")]
    bad: set[int] = set()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for i in range(rows):
            row = list(rng.choice(source))
            row[0] = str(i + 1)
            if i % BAD_EVERY == BAD_EVERY - 1:
                row[rng.choice(broken_columns)] = "??"
                bad.add(i + 2)
            writer.writerow(row)
    return bad


# --- one job --------------------------------------------------------------------------------


@dataclass
class Job:
    rows: int
    bad: set[int]
    key: str
    name: str


class TimedInvoke:
    """The interpreter's Invoke through the local runner, timing each batch's round trip and
    noting when resolve returned and the first batch went out."""

    def __init__(self, api: LocalApi) -> None:
        self.invoke = through_runner(api)
        self.batches: list[tuple[int, float]] = []  # (rows, seconds)
        self.marks: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, function: str, payload: Any) -> Any:
        started = time.perf_counter()
        is_batch = isinstance(payload, dict) and "Items" in payload
        if is_batch:
            with self.lock:
                self.marks.setdefault("first_batch", started)
        result = self.invoke(function, payload)
        ended = time.perf_counter()
        with self.lock:
            if is_batch:
                self.batches.append((len(payload["Items"]), ended - started))
                self.marks["last_batch"] = ended
            elif payload.get("action") == "resolve":
                self.marks["resolved"] = ended
        return result


def _part_lines(s3: S3Client, bucket: str, prefix: str) -> collections.Counter[int]:
    lines: collections.Counter[int] = collections.Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read().decode()
            lines.update(int(row["line"]) for row in csv.DictReader(io.StringIO(body)))
    return lines


def account(s3: S3Client, bucket: str, job: Job) -> dict[str, int]:
    """Every input line in out/ or rejected/ exactly once, the rejected ones the broken rows,
    and _SUCCESS.json agreeing: raises AssertionError otherwise."""
    base = f"batch/{job.name}/"
    out = _part_lines(s3, bucket, base + "out/")
    rejected = _part_lines(s3, bucket, base + "rejected/")
    twice = [line for line, n in (out + rejected).items() if n > 1]
    assert not twice, f"{job.name}: {len(twice)} line(s) written more than once, e.g. {twice[:5]}"
    expected = set(range(2, job.rows + 2))
    assert set(out) | set(rejected) == expected, (
        f"{job.name}: {len(expected - set(out) - set(rejected))} row(s) missing"
    )
    assert set(rejected) == job.bad, f"{job.name}: rejected {len(rejected)}, broke {len(job.bad)}"
    record = json.loads(s3.get_object(Bucket=bucket, Key=base + "_SUCCESS.json")["Body"].read())
    counts = (record["rows_in"], record["rows_out"], record["rows_rejected"], record["rows_failed"])
    assert counts == (job.rows, len(out), len(rejected), 0), f"{job.name}: _SUCCESS.json {record}"
    return {"rows_in": job.rows, "rows_out": len(out), "rows_rejected": len(rejected)}


def run_job(api: LocalApi, s3: S3Client, job: Job, concurrency: int) -> dict[str, Any]:
    timed = TimedInvoke(api)
    machine = StateMachine(load_definition(), timed, s3, max_concurrency=concurrency)
    started = time.perf_counter()
    execution = machine.run({"key": job.key}, name=job.name)
    wall = time.perf_counter() - started
    if execution.status != "SUCCEEDED":
        raise RuntimeError(f"{job.name}: {execution.status} {execution.error}: {execution.cause}")
    figures: dict[str, Any] = dict(account(s3, api.bucket, job))
    seconds = [s for _, s in timed.batches]
    rows = [n for n, _ in timed.batches]
    marks = timed.marks
    figures.update(
        concurrency=concurrency,
        wall_s=wall,
        rows_per_s=job.rows / wall,
        batches=len(timed.batches),
        rows_per_batch=statistics.median(rows),
        batch_p50_s=statistics.median(seconds),
        batch_p90_s=percentile(seconds, 0.9),
        batch_rows_per_s=sum(rows) / sum(seconds),
        resolve_s=marks["resolved"] - started,
        read_and_batch_s=marks["first_batch"] - marks["resolved"],
        scoring_s=marks["last_batch"] - marks["first_batch"],
        finish_s=started + wall - marks["last_batch"],
    )
    return figures


def main(endpoint: str | None = None) -> dict[str, Any]:
    """Figures for one batch at a time (SINGLE_ROWS, concurrency 1) and whole jobs (sizes(),
    CONCURRENCY), then the AWS projection from them."""
    if endpoint is None:  # an earlier benchmark's local S3 (stopped by now) must not be used
        os.environ.pop("AWS_ENDPOINT_URL", None)
    tail: collections.deque[str] = collections.deque(maxlen=40)  # the functions' last log lines
    figures: dict[str, Any] = {"load_before": load_average(), "jobs": {}}
    with LocalApi(
        TEMPLATE,
        env_vars=ENV_VARS,
        port=0,
        s3_endpoint=endpoint,
        concurrency=CONCURRENCY,
        log=tail.append,
    ) as api:
        s3 = boto3.client("s3", endpoint_url=api.endpoint)
        try:
            files: dict[int, Job] = {}
            for rows in sorted({SINGLE_ROWS, *sizes()}):
                path = DATA / f"sales-{rows}.csv"
                bad = generate(rows, path)
                key = f"batch/in/{path.name}"
                s3.upload_file(str(path), api.bucket, key)
                files[rows] = Job(rows, bad, key, "")
                figures.setdefault("csv_bytes", {})[rows] = path.stat().st_size
            stamp = time.strftime("%Y%m%dT%H%M%S")
            # Warm the function processes (cold starts are not what this measures).
            warm = files[SINGLE_ROWS]
            run_job(api, s3, Job(warm.rows, warm.bad, warm.key, f"bench-warm-{stamp}"), CONCURRENCY)
            one = run_job(api, s3, Job(warm.rows, warm.bad, warm.key, f"bench-one-{stamp}"), 1)
            figures["one_batch"] = one
            for rows in sizes():
                job = files[rows]
                name = f"bench-{rows}-{stamp}"
                figures["jobs"][rows] = run_job(
                    api, s3, Job(rows, job.bad, job.key, name), CONCURRENCY
                )
                print(f"bench_batch: {rows:,} rows in {figures['jobs'][rows]['wall_s']:.1f} s",
                      flush=True)  # fmt: skip
        except Exception:
            print("bench_batch: the functions' last log lines:\n" + "\n".join(tail), flush=True)
            raise
    figures["load_after"] = load_average()
    figures["definition"] = _batcher()
    largest = max(figures["csv_bytes"])
    bytes_per_row = figures["csv_bytes"][largest] / largest
    figures["projection"] = project(
        figures["one_batch"], bytes_per_row, figures["definition"]["max_concurrency"]
    )
    return figures


def _batcher() -> dict[str, Any]:
    definition = json.loads(DEFINITION.read_text())
    csv_map = definition["States"]["ScoreCsv"]
    return {
        "max_concurrency": csv_map["MaxConcurrency"],
        "max_items": csv_map["ItemBatcher"]["MaxItemsPerBatch"],
        "max_bytes": csv_map["ItemBatcher"]["MaxInputBytesPerBatch"],
        "child_type": csv_map["ItemProcessor"]["ProcessorConfig"]["ExecutionType"],
    }


# --- the AWS projection ---------------------------------------------------------------------

READ_ON = "2026-11-29"  # the day the prices below were read (docs/batch.md: where, and how)
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
SFN_PRICING = "https://aws.amazon.com/step-functions/pricing/"
SFN_TRANSITIONS = "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html"
S3_PRICING = "https://aws.amazon.com/s3/pricing/"
SAGEMAKER_PRICING = "https://aws.amazon.com/sagemaker/pricing/"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


# On-demand, us-east-1, x86, first pricing tier, no free tier counted.
PRICES = {
    "lambda_gb_s": Price(0.0000166667, "GB-second of Lambda duration", LAMBDA_PRICING),
    "lambda_request": Price(0.20 / 1e6, "Lambda request", LAMBDA_PRICING),
    "sfn_transition": Price(0.025 / 1000, "Standard state transition", SFN_PRICING),
    "sfn_express_request": Price(1.00 / 1e6, "Express workflow request", SFN_PRICING),
    "sfn_express_gb_s": Price(0.00001667, "Express GB-second (64 MB chunks, 100 ms)", SFN_PRICING),
    "s3_put": Price(0.005 / 1000, "S3 Standard PUT", S3_PRICING),
    "s3_get": Price(0.0004 / 1000, "S3 Standard GET", S3_PRICING),
    "sagemaker_m5_large_hour": Price(0.115, "ml.m5.large Batch Transform hour", SAGEMAKER_PRICING),
}

# What the projection assumes beyond the measured batch (docs/batch.md says why).
ASSUMPTIONS: dict[str, float] = {
    "lambda_memory_mb": 1024,  # template.yaml's BatchMemorySize default
    "full_vcpu_mb": 1769,  # Lambda gives one full vCPU at 1,769 MB, a share below it
    "cold_start_s": 1.0,  # billed init + model load, once per concurrent environment
    "child_overhead_s": 0.1,  # Step Functions starting a child + invoking Lambda, per batch
    "job_overhead_s": 10.0,  # resolve, ItemReader start, ResultWriter, finish
    "transitions_per_child": 2,  # the child's start (Distributed Map) + its one Task state
    "transitions_per_job": 4,  # Resolve, Format, ScoreCsv, RecordSuccess
    "puts_per_batch": 2,  # out/ part + rejected/ part (worst case: every batch has a reject)
    "get_bytes": 2**20,  # one ItemReader GET per MiB of input (not documented by AWS)
    "gets_per_cold_start": 4,  # alias, manifest, attestation, model
    "express_memory_gb": 0.0625,  # one 64 MB chunk: a child holds one 200 KB batch
    "sagemaker_vcpus": 2,  # ml.m5.large: 2 vCPUs, 8 GiB; one model worker per vCPU
    "sagemaker_startup_s": 300.0,  # instance and container start, assumed billed
}
PROJECTED_ROWS = (10_000_000, 100_000_000)
CONCURRENCY_AWS = (100, 1000)  # the definition's MaxConcurrency; Lambda's default account limit


def project(one: dict[str, Any], bytes_per_row: float, max_concurrency: int) -> dict[str, Any]:
    """Wall time and cost of scoring PROJECTED_ROWS on AWS from one measured batch (rows per
    batch, round trip at concurrency 1), with PRICES and ASSUMPTIONS; and SageMaker Batch
    Transform on one ml.m5.large doing the same work per row on each of its vCPUs."""
    a, p = ASSUMPTIONS, {k: v.usd for k, v in PRICES.items()}
    rows_per_batch = float(one["rows_per_batch"])
    local_s = float(one["batch_p50_s"])
    lambda_s = local_s * a["full_vcpu_mb"] / a["lambda_memory_mb"]  # a share of one vCPU
    gb = a["lambda_memory_mb"] / 1024
    out: dict[str, Any] = {
        "rows_per_batch": rows_per_batch,
        "local_batch_s": local_s,
        "lambda_batch_s": lambda_s,
        "max_concurrency": max_concurrency,
        "rows": {},
    }
    for rows in PROJECTED_ROWS:
        batches = math.ceil(rows / rows_per_batch)
        per_batch = lambda_s + a["child_overhead_s"]
        fixed = a["job_overhead_s"] + a["cold_start_s"]
        levels = sorted({max_concurrency, *CONCURRENCY_AWS})
        wall = {str(c): math.ceil(batches / c) * per_batch + fixed for c in levels}
        envs = max_concurrency
        lambda_gb_s = (batches * lambda_s + envs * a["cold_start_s"]) * gb
        cost = {
            "lambda_duration": lambda_gb_s * p["lambda_gb_s"],
            "lambda_requests": (batches + 2) * p["lambda_request"],
            "sfn_standard": (batches * a["transitions_per_child"] + a["transitions_per_job"])
            * p["sfn_transition"],
            "s3_requests": batches * a["puts_per_batch"] * p["s3_put"]
            + (rows * bytes_per_row / a["get_bytes"] + envs * a["gets_per_cold_start"])
            * p["s3_get"],
        }
        express_s = math.ceil(per_batch / 0.1) * 0.1
        express = (
            batches * p["sfn_transition"]  # the child's start, counted in the Standard parent
            + a["transitions_per_job"] * p["sfn_transition"]
            + batches * p["sfn_express_request"]
            + batches * express_s * a["express_memory_gb"] * p["sfn_express_gb_s"]
        )
        sagemaker_rows_per_s = a["sagemaker_vcpus"] * rows_per_batch / local_s
        sagemaker_s = rows / sagemaker_rows_per_s + a["sagemaker_startup_s"]
        out["rows"][rows] = {
            "batches": batches,
            "wall_s": wall,
            "cost": cost,
            "total": sum(cost.values()),
            "sfn_express": express,
            "total_with_express": sum(cost.values()) - cost["sfn_standard"] + express,
            "sagemaker_rows_per_s": sagemaker_rows_per_s,
            "sagemaker_s": sagemaker_s,
            "sagemaker_cost": sagemaker_s / 3600 * p["sagemaker_m5_large_hour"],
        }
    return out


# --- RESULTS.md -----------------------------------------------------------------------------


def section(f: dict[str, Any]) -> list[str]:
    lines = [
        (__doc__ or "").split("\n\n")[0].replace("\n", " "),
        "",
        f"Load average (1, 5, 15 min) before: {f['load_before']}; after: {f['load_after']}.",
        "",
    ]
    one = f["one_batch"]
    lines += [
        "| one batch (warm, concurrency 1) | value |",
        "| --- | ---: |",
        f"| rows per batch (median; batches of {one['rows_in']:,} rows) | "
        f"{one['rows_per_batch']:,.0f} |",
        f"| round trip p50 / p90 | {one['batch_p50_s'] * 1000:,.0f} / "
        f"{one['batch_p90_s'] * 1000:,.0f} ms |",
        f"| rows/s in one batch | {one['batch_rows_per_s']:,.0f} |",
        "",
        "| rows | CSV MiB | wall s | rows/s | batches | batch p50 ms | read + batch s "
        "| scoring s | out | rejected | out + rejected = in |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    jobs = {int(k): v for k, v in f["jobs"].items()}
    for rows, g in sorted(jobs.items()):
        ok = g["rows_out"] + g["rows_rejected"] == g["rows_in"] == rows
        lines.append(
            f"| {rows:,} | {f['csv_bytes'][rows] / 2**20:.1f} | {g['wall_s']:.1f} "
            f"| {g['rows_per_s']:,.0f} | {g['batches']:,} | {g['batch_p50_s'] * 1000:,.0f} "
            f"| {g['read_and_batch_s']:.1f} | {g['scoring_s']:.1f} | {g['rows_out']:,} "
            f"| {g['rows_rejected']:,} | {'yes' if ok else '**no**'} |"
        )
    if len(jobs) > 1:
        small, large = min(jobs), max(jobs)
        growth = jobs[large]["wall_s"] / jobs[small]["wall_s"]
        lines += [
            "",
            f"{large / small:.0f}x the rows took {growth:.1f}x the time (concurrency "
            f"{jobs[large]['concurrency']}, as `make batch`); the 1,000,000-row run: "
            f"`{ROWS_ENV}=10000,100000,1000000` (figures in docs/batch.md).",
        ]
    return lines + [""] + projection_lines(f["projection"])


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.10f}".rstrip("0")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def projection_lines(g: dict[str, Any]) -> list[str]:
    """The AWS projection as a table, with its inputs, assumptions and prices."""
    a = ASSUMPTIONS
    rows = {int(k): v for k, v in g["rows"].items()}
    head = " | ".join(f"{n:,} rows" for n in rows)
    concurrencies = sorted(int(c) for c in next(iter(rows.values()))["wall_s"])

    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(v) for v in rows.values()) + " |"

    lines = [
        f"Projection for AWS (us-east-1, on-demand, prices read {READ_ON}; docs/batch.md): one "
        f"batch of {g['rows_per_batch']:,.0f} rows took {g['local_batch_s'] * 1000:,.0f} ms here "
        f"on one core; at BatchMemorySize {a['lambda_memory_mb']:.0f} MB Lambda gives "
        f"{a['lambda_memory_mb'] / a['full_vcpu_mb']:.0%} of a vCPU, so "
        f"{g['lambda_batch_s'] * 1000:,.0f} ms, plus {a['child_overhead_s'] * 1000:.0f} ms to "
        f"start each child execution. Concurrency {g['max_concurrency']} is the map's "
        "MaxConcurrency.",
        "",
        f"| | {head} |",
        "| --- |" + " ---: |" * len(rows),
        row("batches (child executions)", lambda v: f"{v['batches']:,}"),
    ]
    for c in concurrencies:
        lines.append(
            row(f"wall time at concurrency {c:,}", lambda v, c=c: _duration(v["wall_s"][str(c)]))
        )
    names = {
        "lambda_duration": "Lambda duration",
        "lambda_requests": "Lambda requests",
        "sfn_standard": "Step Functions (Standard children, as the template)",
        "s3_requests": "S3 requests",
    }
    for key, label in names.items():
        lines.append(row(label, lambda v, key=key: f"${v['cost'][key]:,.2f}"))
    lines += [
        row("**total**", lambda v: f"**${v['total']:,.2f}**"),
        row("total with Express children instead", lambda v: f"${v['total_with_express']:,.2f}"),
        row(
            "SageMaker Batch Transform, 1 ml.m5.large: time",
            lambda v: f"{_duration(v['sagemaker_s'])} ({v['sagemaker_rows_per_s']:,.0f} rows/s)",
        ),
        row(
            "SageMaker Batch Transform, 1 ml.m5.large: cost",
            lambda v: f"${v['sagemaker_cost']:,.2f}",
        ),
        "",
        "Prices: " + "; ".join(f"${_number(v.usd)} per {v.per}" for v in PRICES.values()) + ".",
        "Assumptions: " + ", ".join(f"{k} {_number(v)}" for k, v in a.items()) + ".",
    ]
    return lines


if __name__ == "__main__":
    result = main()
    print("\n".join(section(result)))
