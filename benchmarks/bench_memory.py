"""Memory: peak RSS of a fresh process on the shipped build after its cold start (first
prediction) and after a 10,000-row batch (the same child as the cold start benchmark)."""

from __future__ import annotations

from typing import Any

from benchmarks.bench_cold import run_once
from benchmarks.common import ensure_build, seeded_registry, target_python

BATCH_ROWS = 10_000


def main(endpoint: str | None = None) -> dict[str, Any]:
    ensure_build()
    python, note = target_python()
    if endpoint is None:
        with seeded_registry() as local:
            return main(local)
    run = run_once(endpoint, python, batch_rows=BATCH_ROWS)
    return {
        "python": note,
        "batch_rows": BATCH_ROWS,
        "rss_cold_mb": run["rss_cold_kb"] / 1024,
        "rss_batch_mb": run["rss_batch_kb"] / 1024,
    }


if __name__ == "__main__":
    figures = main()
    print(f"peak RSS after cold start: {figures['rss_cold_mb']:.1f} MiB ({figures['python']})")
    print(f"peak RSS after {figures['batch_rows']:,} rows: {figures['rss_batch_mb']:.1f} MiB")
