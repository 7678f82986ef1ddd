"""Command line: train a model, publish it to the S3 registry, promote, roll back, list, show."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklambda.artifact import train_artifact
from sklambda.config import load_config
from sklambda.data import load_dataset
from sklambda.errors import SklambdaError
from sklambda.manifest import Manifest
from sklambda.store import ModelStore

DESCRIPTION = """\
Train a scikit-learn model from a CSV and a TOML config, then publish it to the S3 model
registry that the predict function serves from.

typical flow:
  python -m training train --config training/configs/house_prices.toml --out artifacts/house-prices
  python -m training publish artifacts/house-prices --bucket my-models
  python -m training promote --model house-prices --version <version> --bucket my-models
  python -m training list --bucket my-models

The bucket comes from --bucket or $MODEL_BUCKET. Set AWS_ENDPOINT_URL to use a local S3
(a moto server) instead of AWS.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except SklambdaError as exc:
        _fail(exc.one_line())
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as exc:  # boto/botocore and OS errors: one line, never a traceback
        name = type(exc).__name__
        _fail(f"{name}: {exc}")
    return 1


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _store(args: argparse.Namespace) -> ModelStore:
    import boto3  # imported here so `train` works without AWS configuration

    bucket = args.bucket or os.environ.get("MODEL_BUCKET")
    if not bucket:
        raise SklambdaError("no bucket: pass --bucket or set MODEL_BUCKET", status=2, code="usage")
    return ModelStore(boto3.client("s3"), bucket)


# --- commands ------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _say(f"reading and validating {args.data or config.data.source or '(no data)'}")
    dataset = load_dataset(config, args.data)
    _say(f"training {config.estimator.kind} with {config.evaluation.cv_folds}-fold CV")
    out = Path(args.out or f"artifacts/{config.name}")
    manifest = train_artifact(config, dataset, out, progress=lambda m: _say("  " + m)).manifest
    print()
    print(format_metrics(manifest.metrics))
    print()
    files = ", ".join(f"{a.key} ({a.bytes:,} bytes)" for a in manifest.artifacts)
    _say(f"wrote {out}/: {files} and manifest.json")
    print(f"version {manifest.version}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    store = _store(args)
    _say(f"publishing {args.folder} to s3://{store.bucket}")
    manifest = store.publish(Path(args.folder))
    sha = manifest.artifact.sha256[:12]
    _say(f"uploaded and verified {manifest.name} {manifest.version} (sha256 {sha}…)")
    if args.promote:
        record = store.promote(manifest.name, manifest.version, args.alias)
        _say(f"alias {args.alias} -> {record.version} (previous: {record.previous or 'none'})")
    print(f"version {manifest.version}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    store = _store(args)
    record = store.promote(args.model, args.version, args.alias)
    previous = record.previous or "none"
    _say(f"{args.model}: alias {args.alias} -> {record.version} (previous: {previous})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    record = store.rollback(args.model, args.alias)
    _say(f"{args.model}: alias {args.alias} rolled back to {record.version}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    names = [args.model] if args.model else store.model_names()
    if not names:
        print(f"no models in s3://{store.bucket}")
    for name in names:
        alias = store.alias(name, args.alias)
        print(f"{name}")
        versions = store.versions(name)
        if not versions:
            print("  (no versions)")
        for version in versions:
            m = store.manifest(name, version)
            mark = f"  <- {args.alias}" if alias and alias.version == version else ""
            print(
                f"  {version}  {m.estimator['kind']:<22} cv r2 {_cv(m, 'r2'):>7}  "
                f"holdout r2 {m.metrics['holdout']['r2']:.3f}{mark}"
            )
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from sklambda.retrain import Retrainer, RetrainRequest

    store = _store(args)
    request = RetrainRequest(
        model=args.model,
        alias=args.alias,
        trigger="manual",
        dataset_key=args.dataset_key,
        tolerance=args.tolerance,
        floor=args.floor,
    )

    def log(phase: str, **fields: Any) -> None:
        shown = {k: v for k, v in fields.items() if not isinstance(v, dict)}
        _say(f"{phase}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))

    _say(
        f"retraining {args.model} from s3://{store.bucket}/"
        + (args.dataset_key or f"datasets/{args.model}/")
    )
    record = Retrainer(store, log=log).run(request)
    print()
    print(format_run(record.as_dict()))
    return 0 if record.status in ("promoted", "rejected") else 1


def format_run(run: dict[str, Any]) -> str:
    """Decision, reason and both sets of holdout metrics of a retrain run record."""
    champion = run["champion"].get("holdout") or {}
    challenger = (run["challenger"].get("metrics") or {}).get("holdout") or {}
    lines = [f"run {run['run_id']}: {run['status'].upper()} - {run['reason']}"]
    if champion or challenger:
        lines.append(f"{'holdout':<8}{'champion':>14}{'challenger':>14}")
        for name in ("r2", "rmse", "mae", "mape"):
            cells = [
                f"{m[name]:>14.4f}" if name in m else f"{'-':>14}" for m in (champion, challenger)
            ]
            lines.append(f"{name:<8}" + "".join(cells))
    lines.append(
        f"champion {run['champion'].get('version', '-')}, "
        f"challenger {run['challenger'].get('version', '-')}"
    )
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    manifest = store.resolve(args.model, args.alias, args.version)
    print(describe(manifest))
    return 0


# --- output --------------------------------------------------------------------------------


def _cv(manifest: Manifest, metric: str) -> str:
    return f"{manifest.metrics['cv'][metric]['mean']:.3f}"


def format_metrics(metrics: dict[str, Any]) -> str:
    """A small table: CV mean ± sd and holdout, per metric."""
    lines = [f"{'metric':<8}{'cv mean':>14}{'cv sd':>12}{'holdout':>14}"]
    for name in ("r2", "rmse", "mae", "mape"):
        cv = metrics["cv"][name]
        fmt = "{:>14.4f}" if name in ("r2", "mape") else "{:>14,.1f}"
        sd = "{:>12.4f}" if name in ("r2", "mape") else "{:>12,.1f}"
        lines.append(
            f"{name:<8}"
            + fmt.format(cv["mean"])
            + sd.format(cv["sd"])
            + fmt.format(metrics["holdout"][name])
        )
    lines.append(
        f"({metrics['cv_folds']}-fold CV on {metrics.get('rows', '?')} rows; model fitted on "
        f"{metrics['train_rows']}, holdout {metrics['holdout_rows']})"
    )
    return "\n".join(lines)


def describe(m: Manifest) -> str:
    feats = ", ".join(
        f"{f['name']}:{f['type']}" + ("(log)" if f.get("transform") == "log" else "")
        for f in m.features
    )
    return "\n".join(
        [
            f"{m.name} {m.version}  (created {m.created_at})",
            f"  estimator  {m.estimator['class']}",
            f"  target     {m.target.name} (transform: {m.target.transform})",
            f"  features   {feats}",
            *(
                f"  {a.key:<12} {a.bytes:>9,} bytes, sha256 {a.sha256}"
                + ("  (served: numpy, no scikit-learn)" if a.format == "npz" else "")
                for a in m.artifacts
            ),
            "  runtime    " + ", ".join(f"{k} {v}" for k, v in m.runtime.items()),
            f"  data       {m.data.source} ({m.data.rows} rows, sha256 {m.data.sha256[:12]}…)",
            f"  parent     {m.parent_version or '-'}",
            "",
            format_metrics(m.metrics),
        ]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(run=func)
        return p

    def registry(p: argparse.ArgumentParser, model: bool = True) -> None:
        p.add_argument("--bucket", help="S3 bucket of the registry (default: $MODEL_BUCKET)")
        p.add_argument("--alias", default="live", help="alias name (default: live)")
        if model:
            p.add_argument("--model", required=True, help="model name, e.g. house-prices")

    p = command(
        "train", cmd_train, "train and evaluate a model, write model.joblib + manifest.json"
    )
    p.add_argument(
        "--config",
        required=True,
        help="model config (TOML), e.g. training/configs/house_prices.toml",
    )
    p.add_argument("--data", help="CSV file (default: [data] source in the config)")
    p.add_argument("--out", help="output folder (default: artifacts/<model name>)")

    p = command("publish", cmd_publish, "upload a trained folder as a new immutable version")
    p.add_argument("folder", help="folder written by `train`")
    p.add_argument("--promote", action="store_true", help="also point the alias at it")
    registry(p, model=False)

    p = command("promote", cmd_promote, "point an alias (default: live) at a published version")
    p.add_argument("--version", required=True, help="version to serve")
    registry(p)

    p = command("rollback", cmd_rollback, "point an alias back to the version it had before")
    registry(p)

    p = command("list", cmd_list, "list models and versions in the bucket")
    p.add_argument("--model", help="only this model")
    p.add_argument("--bucket", help="S3 bucket of the registry (default: $MODEL_BUCKET)")
    p.add_argument("--alias", default="live", help="alias to mark (default: live)")

    p = command(
        "retrain",
        cmd_retrain,
        "retrain from the bucket's datasets/<model>/ with the champion's config; "
        "promote only if not worse",
    )
    registry(p)
    p.add_argument("--dataset-key", help="one CSV key instead of every CSV under datasets/<model>/")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="how much worse the primary metric may be (default 0.01)",
    )
    p.add_argument("--floor", type=float, help="absolute bar for the primary metric")

    p = command("show", cmd_show, "show a version's manifest (default: the live one)")
    p.add_argument("--version", help="a version (default: the one the alias points to)")
    registry(p)
    return parser
