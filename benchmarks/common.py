"""Shared helpers: a trained model folder, percentiles, machine facts, quiet Powertools."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "training" / "configs" / "house_prices.toml"
WORK = ROOT / ".cache" / "bench"


def quiet_powertools() -> None:
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Bench")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "predict")


def trained_model() -> Path:
    """Train the default model once into .cache/bench/house-prices (reused afterwards)."""
    from sklambda.artifact import write_artifact
    from sklambda.config import load_config
    from sklambda.data import prepare, read_csv
    from sklambda.training import train

    out = WORK / "house-prices"
    if not (out / "manifest.json").exists():
        config = load_config(CONFIG)
        data = prepare(config, read_csv(config.data.source))
        write_artifact(out, config, data, train(config, data))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpus = os.cpu_count()
    return (
        f"{platform.machine()}, {cpus} CPUs, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]} (benchmark driver)"
    )
