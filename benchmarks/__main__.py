"""`make bench`: every benchmark, printed and written to benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_batch,
    bench_classifier,
    bench_cold,
    bench_explain,
    bench_faults,
    bench_http,
    bench_init,
    bench_memory,
    bench_size,
    bench_warm,
)
from benchmarks.common import ROOT, load_average, machine, seeded_registry

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
COMMAND = "make bench"
RUN = "PYTHONPATH=functions/predict:functions/retrain .venv/bin/python -m benchmarks"
MIB = 2**20

TARGETS = {
    "size": "function + layers <= 190 MiB (199,229,440 bytes) unzipped, bytecode included",
    "cold": "process start to first prediction <= 800 ms median",
    "warm": "one-row handler p50 <= 200 us; 10,000-row batch >= 500,000 rows/s",
    "memory": "peak RSS <= 300 MB",
    "faults": "a cold start that cannot reach S3 answers 503 within 3 s; a warm container adds no "
    "latency while S3 hangs or refuses",
}


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def size_section(f: dict[str, Any]) -> list[str]:
    lines = ["| part | unzipped bytes | MiB |", "| --- | ---: | ---: |"]
    lines += [f"| {n} | {b:,} | {b / MIB:.1f} |" for n, b in f["parts"].items()]
    lines += ["", "| function + its layers | bytes | MiB | of Lambda's 262,144,000 | target |"]
    lines += ["| --- | ---: | ---: | ---: | --- |"]
    for name, total in f["totals"].items():
        lines.append(
            f"| {name} | {total:,} | {total / MIB:.1f} | {total / f['limit']:.1%} "
            f"| {_met(total <= f['target'])} |"
        )
    return lines


def cold_section(f: dict[str, Any]) -> list[str]:
    lines = [
        f"{f['runs']} fresh processes on {f['python']}, code and layer from `{f['build']}`, "
        "model resolved, fetched (empty cache each run) and sha256-verified from a local moto "
        f"S3. Total range {f['min_total_ms']:.0f}-{f['max_total_ms']:.0f} ms.",
        "",
        "| phase (median of runs) | ms |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in f["median_ms"].items()]
    total = f["median_ms"]["total: process start to first prediction"]
    lines += ["", f"Target 800 ms: {_met(total <= 800)}."]
    if "pickle" in f:
        p = f["pickle"]
        lines += [
            "",
            f"For comparison, the pickle (`MODEL_FORMAT=joblib`, {p['runs']} runs): median "
            f"{p['median_ms']['total: process start to first prediction']:.0f} ms, of which "
            f"imports {p['median_ms']['imports (handler module)']:.0f} ms and load "
            f"{p['median_ms']['load (model.npz; or runtime check + joblib.load + fast path)']:.0f}"
            " ms (scikit-learn and scipy are imported to unpickle).",
        ]
    return lines


def warm_section(f: dict[str, Any]) -> list[str]:
    lines = [
        f"Handler in process, API Gateway events; serving {f['served']}. Records and lists "
        "take turns (the same load for both); CPU: this thread's CPU time, without the waits "
        "for a core that other processes cause.",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| one row p50 | {f['one_row_p50_us']:.0f} us |",
        f"| one row p99 | {f['one_row_p99_us']:.0f} us |",
        f"| one row p50, plain / with its 90% interval (taking turns) | "
        f"{f['one_row_plain_p50_us']:.0f} / {f['one_row_intervals_p50_us']:.0f} us "
        f"({f['one_row_intervals_to_plain_ratio']:.2f}x) |",
    ]
    for rows in (100, 10_000):
        for shape in ("records", "lists"):
            lines.append(
                f"| {rows:,} rows ({shape}) p50 | {f[f'rows_{rows}_{shape}_p50_ms']:.2f} ms, "
                f"{f[f'rows_{rows}_{shape}_rows_per_s']:,.0f} rows/s "
                f"(CPU {f[f'rows_{rows}_{shape}_cpu_rows_per_s']:,.0f}) |"
            )
        lines.append(
            f"| {rows:,} rows: records / lists | {f[f'rows_{rows}_records_to_lists_ratio']:.2f} "
            f"(CPU {f[f'rows_{rows}_records_to_lists_cpu_ratio']:.2f}) |"
        )
    best = max(f["rows_10000_records_rows_per_s"], f["rows_10000_lists_rows_per_s"])
    lines += [
        "",
        f"Targets: one-row p50 <= 200 us {_met(f['one_row_p50_us'] <= 200)}; "
        f"10,000 rows >= 500,000 rows/s: records {_met(f['rows_10000_records_rows_per_s'] >= 5e5)}"
        f", lists {_met(f['rows_10000_lists_rows_per_s'] >= 5e5)} (best {best:,.0f}).",
    ]
    return lines


def memory_section(f: dict[str, Any]) -> list[str]:
    return [
        f"A fresh process on {f['python']} (shipped build); peak RSS is its VmHWM.",
        "",
        "| when | peak RSS |",
        "| --- | ---: |",
        f"| after the cold start (first prediction) | {f['rss_cold_mb']:.1f} MiB |",
        f"| after a {f['batch_rows']:,}-row batch | {f['rss_batch_mb']:.1f} MiB |",
        "",
        f"Target 300 MB: {_met(max(f['rss_cold_mb'], f['rss_batch_mb']) * MIB <= 300e6)}.",
    ]


def http_section(f: dict[str, Any]) -> list[str]:
    lines = [
        (bench_http.__doc__ or "").split("\n\n")[0].replace("\n", " "),
        "",
        "| concurrency | requests | p50 ms | p99 ms | requests/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for level, g in f.items():
        lines.append(
            f"| {level[1:]} | {g['requests']} | {g['p50_ms']:.2f} | {g['p99_ms']:.2f} "
            f"| {g['requests_per_s']:.0f} |"
        )
    return lines


def faults_section(f: dict[str, Any]) -> list[str]:
    lines = [
        (bench_faults.__doc__ or "").split("\n\n")[0].replace("\n", " "),
        "",
        "| cold start, S3 ... | status | median ms | max ms |",
        "| --- | --- | ---: | ---: |",
    ]
    for name, g in f["cold"].items():
        status = ", ".join(map(str, g["status"]))
        lines.append(f"| {name} | {status} | {g['median_ms']:.0f} | {g['max_ms']:.0f} |")
    lines += ["", "| warm, S3 ... | status | p50 us | p99 us | p50 / healthy p50 |"]
    lines += ["| --- | --- | ---: | ---: | ---: |"]
    for name, g in f["warm"].items():
        ratio = g.get("p50_ratio_to_healthy")
        lines.append(
            f"| {name} | {', '.join(map(str, g['status']))} | {g['p50_us']:.0f} "
            f"| {g['p99_us']:.0f} | {'' if ratio is None else f'{ratio:.2f}'} |"
        )
    lines += ["", "| capture, stream ... | status | first ms | p50 us | p99 us | max ms | sent |"]
    lines += ["| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, g in f.get("capture", {}).items():
        lines.append(
            f"| {name} | {', '.join(map(str, g['status']))} | {g['first_ms']:.1f} "
            f"| {g['p50_us']:.0f} | {g['p99_us']:.0f} | {g['max_ms']:.1f} "
            f"| {g['rows_sent']:,} of {g['requests']:,} |"
        )
    worst = max(g["max_ms"] for name, g in f["cold"].items() if name != "healthy")
    slowest = max(g.get("p50_ratio_to_healthy", 0.0) for g in f["warm"].values())
    lines += [
        "",
        f"Targets: cold 503 within 3 s {_met(worst <= 3000)} (slowest {worst:.0f} ms); warm "
        f"p50 no worse than healthy (+20% noise) {_met(slowest <= 1.2)}.",
    ]
    return lines


def init_section(f: dict[str, Any]) -> list[str]:
    paragraphs = (bench_init.__doc__ or "").split("\n\n")
    lines = [paragraphs[0].replace("\n", " "), "", paragraphs[1].strip().replace("\n", " "), ""]
    lines += [
        f"Seconds, wall (CPU); load average (1, 5, 15 min) {f['load']}.",
        "",
        "| rows x columns | CSV MiB | features | estimator, CV folds | init | read + validate "
        "| train (CV, final fit, write) | total | CV R² | holdout R² |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    sizes = [f[f"rows_{rows}"] for rows in bench_init.SIZES]
    for g in sizes:
        cells = [f"{g[p + '_s']:.1f} ({g[p + '_cpu_s']:.1f})" for p in ("init", "read", "train")]
        total = f"{g['total_s']:.1f} ({g['total_cpu_s']:.1f})"
        lines.append(
            f"| {g['rows']:,} x {g['columns']} | {g['csv_mib']:.1f} | {g['features']} "
            f"| {g['estimator']}, {g['cv_folds']} | {' | '.join(cells)} | {total} "
            f"| {g['cv_r2']:.4f} | {g['holdout_r2']:.4f} |"
        )
    small, large = sizes[0], sizes[-1]
    growth = ", ".join(
        f"{name} {large[p + '_cpu_s'] / small[p + '_cpu_s']:.0f}x"
        for name, p in (("init", "init"), ("read", "read"), ("train", "train"), ("total", "total"))
    )
    lines += [
        "",
        f"{large['rows'] / small['rows']:.0f}x the rows, in CPU time: {growth} "
        f"({small['cv_folds']} then {large['cv_folds']} CV folds).",
    ]
    return lines


def main() -> None:
    started = time.monotonic()
    load_before = load_average()
    sections: list[tuple[str, str, list[str]]] = []

    def run(title: str, module: str, render: Any, figures: dict[str, Any]) -> None:
        lines = render(figures)
        sections.append((title, module, lines))
        print(f"\n## {title}\n" + "\n".join(lines), flush=True)

    run("Size", "bench_size", size_section, bench_size.main())
    with seeded_registry() as endpoint:
        cold = bench_cold.main(endpoint)
        cold["pickle"] = bench_cold.main(endpoint, runs=5, model_format="joblib")
        run("Cold start", "bench_cold", cold_section, cold)
        run("Memory", "bench_memory", memory_section, bench_memory.main(endpoint))
        run("HTTP (local API)", "bench_http", http_section, bench_http.main(endpoint))
        run("S3 faults", "bench_faults", faults_section, bench_faults.main(endpoint))
        classifier = bench_classifier.main(endpoint)
        run("Classifier (penguins)", "bench_classifier", bench_classifier.section, classifier)
    run("Warm handler", "bench_warm", warm_section, bench_warm.main())
    run("Explanations", "bench_explain", bench_explain.section, bench_explain.main())
    run("init + train (generated wide tables)", "bench_init", init_section, bench_init.main())
    run("Batch transform", "bench_batch", bench_batch.section, bench_batch.main())

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Benchmark results",
        "",
        f"Written by `{COMMAND}` (`{RUN}`) on {now}, in {time.monotonic() - started:.0f} s.",
        "",
        f"- Machine: {machine()}.",
        f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_average()}. The "
        "machine is shared with other jobs: figures move with that load.",
        "- One benchmark alone: `PYTHONPATH=functions/predict:functions/retrain "
        ".venv/bin/python -m benchmarks.<module>`.",
        "",
        "Targets (issue 5): " + "; ".join(TARGETS.values()) + ".",
    ]
    for title, module, lines in sections:
        out += ["", f"## {title}", "", f"Module: `benchmarks/{module}.py`.", "", *lines]
    RESULTS.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
