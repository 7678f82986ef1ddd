"""Command line: train a model, publish it to the S3 registry, promote, roll back, list, show."""

from __future__ import annotations

import argparse
import io
import ipaddress
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from sklambda.artifact import train_artifact
from sklambda.config import TASK_METRICS, load_config
from sklambda.data import load_dataset
from sklambda.errors import RegistryError, SklambdaError
from sklambda.manifest import Manifest
from sklambda.names import NameKind, validate_name
from sklambda.settings import DEFAULT_ALIAS
from sklambda.signing import Signer, Verifier
from sklambda.store import ModelStore
from training.report import (
    REPORT_FILE,
    default_report_path,
    download_report,
    find_model,
    open_in_browser,
    report_after_training,
    report_key,
)

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

    from training.infer import Inference

DESCRIPTION = """\
Train a scikit-learn model from a CSV and a TOML config, then publish it to the S3 model
registry that the predict function serves from.

typical flow:
  python -m training init --data rents.csv --target rent --out training/configs/rents.toml
  python -m training train --config training/configs/house_prices.toml --out artifacts/house-prices
  python -m training publish artifacts/house-prices --bucket my-models
  python -m training promote --model house-prices --version <version> --bucket my-models
  python -m training list --bucket my-models          (--json for scripts)

The bucket comes from --bucket or $MODEL_BUCKET. Set AWS_ENDPOINT_URL to use a local S3
(a moto server) instead of AWS; on 127.0.0.1 or localhost it needs no credentials.
With --signing-key or $MODEL_SIGNING_KEY_ID (a KMS key id, ARN or alias), publish and retrain
sign each version they publish, and promote, rollback and retrain refuse a version whose
signature does not verify.
"""

METRICS = TASK_METRICS["regression"]
CLASS_METRICS = TASK_METRICS["classification"]
LOG_METRICS = ("r2_log", "rmse_log")  # a log target's metrics on the model's log scale
RATIO_METRICS = ("r2", "mape", *LOG_METRICS, *CLASS_METRICS)  # unitless: 4 decimals
PLAIN_WIDTH = 160  # output to a file or pipe: no terminal to take the width from
STATUS_STYLES = {
    "promoted": "bold green",
    "rejected": "bold yellow",
    "held": "bold yellow",
    "failed": "bold red",
}


# Arguments that become S3 keys, checked before anything is read or written.
NAMED_ARGUMENTS: dict[str, NameKind] = {
    "model": "model name",
    "version": "version",
    "alias": "alias",
    "dataset_key": "dataset key",
    "job": "job id",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        for attribute, kind in NAMED_ARGUMENTS.items():
            if getattr(args, attribute, None) is not None:
                validate_name(kind, getattr(args, attribute))
        result: int = args.run(args)
        return result
    except SklambdaError as exc:
        _fail(*exc.lines())  # a data error: one line per broken column
    except (ClientError, EndpointConnectionError) as exc:
        _fail(s3_error_message(exc, _bucket_name(args) or "?"))
    except NoCredentialsError:
        _fail(
            "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID "
            "(a local S3 on 127.0.0.1 via AWS_ENDPOINT_URL needs none)"
        )
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as exc:  # other botocore and OS errors: one line, never a traceback
        _fail(f"{type(exc).__name__}: {exc}")
    return 1


# --- consoles ------------------------------------------------------------------------------


def _console(stderr: bool = False) -> Console:
    """A console on the current sys.stdout (or stderr), made per call so that redirection such as
    pytest's capsys is honoured. Not a terminal: no colour codes and no live displays."""
    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False)


def _plain(renderable: RenderableType) -> str:
    """The renderable as text without colour codes; long lines are kept whole, not cut."""
    console = Console(file=io.StringIO(), width=PLAIN_WIDTH, color_system=None, highlight=False)
    with console.capture() as captured:
        console.print(renderable, crop=False)
    return "\n".join(line.rstrip() for line in captured.get().rstrip().splitlines())


def _show(console: Console, renderable: RenderableType) -> None:
    """Coloured on a terminal; elsewhere the plain text of format_*, without trailing blanks."""
    if console.is_terminal:
        console.print(renderable, crop=False)
    else:
        console.file.write(_plain(renderable) + "\n")
        console.file.flush()


def _fail(message: str, *more: str) -> None:
    """One line, "error: ..."; each of `more` (a data error's broken columns) indented below."""
    console = _console(stderr=True)
    line = Text.assemble(("error:", "bold red"), " ", " ".join(message.split()))
    console.print(line, soft_wrap=True)
    for detail in more:
        console.print(Text("  " + " ".join(detail.split())), soft_wrap=True)


def _say(console: Console, message: str) -> None:
    console.print(Text.assemble((time.strftime("[%H:%M:%S] "), "dim"), message), soft_wrap=True)


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()


@contextmanager
def _progress(console: Console, description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A bar advanced once per message, each message also logged above it. The bar is transient
    and off when the console is not a terminal, so logs get the messages only."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=total)

        def step(message: str) -> None:
            _say(console, "  " + message)
            bar.advance(task)

        yield step


def _status(console: Console, message: str) -> AbstractContextManager[Any]:
    return console.status(message) if console.is_terminal else nullcontext()


# --- S3 ------------------------------------------------------------------------------------


def local_s3_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """Dummy credentials (and us-east-1 when no region is set) for boto3.client, or {}.

    Only when S3 is a loopback server (AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, on 127.0.0.0/8,
    ::1 or localhost) and neither AWS_ACCESS_KEY_ID nor AWS_PROFILE is set: a local moto server
    accepts any credentials but boto3 will not sign without some. Any other endpoint must fail for
    lack of credentials rather than be sent made-up ones.
    """
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
    if not _is_loopback(urlsplit(endpoint).hostname or ""):
        return {}
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE"):
        return {}
    credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        credentials["region_name"] = "us-east-1"
    return credentials


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def s3_error_message(exc: ClientError | EndpointConnectionError, bucket: str) -> str:
    """One sentence a person can act on, naming the bucket or the endpoint."""
    if isinstance(exc, EndpointConnectionError):
        url = urlsplit(str(exc.kwargs.get("endpoint_url", "")))
        # urllib3 prefixes the reason with the connection object: "AWSHTTPConnection(...): "
        reason = re.sub(r"^(\w+\(.*?\)|<.*?>):\s*", "", str(exc.kwargs.get("error") or exc))
        return f"cannot reach S3 at {url.scheme}://{url.netloc}: {reason}"
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    operation = exc.operation_name
    if code == "NoSuchBucket" or (operation == "HeadBucket" and code in ("404", "NotFound")):
        return f"bucket {bucket!r} does not exist (check --bucket or $MODEL_BUCKET)"
    if code in ("AccessDenied", "AllAccessDisabled", "403"):
        return (
            f"access denied to bucket {bucket!r} ({operation}): check the credentials and the "
            "bucket's policy"
        )
    return f"S3 {operation} on bucket {bucket!r} failed: {code} {error.get('Message', '')}".strip()


def _bucket_name(args: argparse.Namespace) -> str | None:
    return getattr(args, "bucket", None) or os.environ.get("MODEL_BUCKET")


def _store(args: argparse.Namespace) -> ModelStore:
    import boto3  # imported here so `train` works without AWS configuration

    bucket = _bucket_name(args)
    if not bucket:
        raise SklambdaError("no bucket: pass --bucket or set MODEL_BUCKET", status=2, code="usage")
    credentials = local_s3_credentials(os.environ)
    client = boto3.client(
        "s3",
        region_name=credentials.get("region_name"),
        aws_access_key_id=credentials.get("aws_access_key_id"),
        aws_secret_access_key=credentials.get("aws_secret_access_key"),
    )
    return ModelStore(client, bucket)


def _signing_key(args: argparse.Namespace) -> str:
    return str(getattr(args, "signing_key", None) or os.environ.get("MODEL_SIGNING_KEY_ID") or "")


def _signer(args: argparse.Namespace) -> Signer | None:
    """A signer when a signing key is given; publishing without one writes unsigned versions."""
    key = _signing_key(args)
    return Signer(_kms(), key) if key else None


def _verifier(args: argparse.Namespace) -> Verifier | None:
    """With a signing key, refuse versions whose signature does not verify (unsigned ones are
    allowed: the functions decide with REQUIRE_SIGNED_MODELS)."""
    key = _signing_key(args)
    return Verifier(key, require=False, kms=_kms) if key else None


def _kms() -> KMSClient:
    import boto3

    credentials = local_s3_credentials(os.environ)  # a loopback endpoint serves KMS as well
    return boto3.client(
        "kms",
        region_name=credentials.get("region_name"),
        aws_access_key_id=credentials.get("aws_access_key_id"),
        aws_secret_access_key=credentials.get("aws_secret_access_key"),
    )


def _require_model(store: ModelStore, name: str) -> None:
    """A typo in --model names the models there, instead of an alias or version not found (and
    before retrain writes a run record under the wrong name)."""
    names = store.model_names()
    if name in names:
        return
    there = f"models there: {', '.join(names)}" if names else "the bucket holds no models"
    raise RegistryError(
        f"no model {name!r} in s3://{store.bucket}; {there}", "model_not_found", 404
    )


# --- commands ------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from training.infer import default_out, write_config  # scipy: imported for init only

    console = _console()
    data = Path(args.data)
    out = Path(args.out) if args.out else default_out(data)
    _say(console, f"reading {data}")
    inference = write_config(
        data, args.target, out=out, task=args.task, force=args.force, name=args.name
    )
    _show(console, init_view(inference))
    console.print()
    kept, left = len(inference.features), len(inference.columns) - len(inference.features) - 1
    _say(
        console,
        f"wrote {out}: model {inference.name}, {kept} features, {left} column(s) left out, "
        f"{inference.estimator.kind}",
    )
    for warning in inference.warnings:
        console.print(Text.assemble(("warning:", "bold yellow"), " ", warning), soft_wrap=True)
    if inference.task == "classification":
        console.print(
            f'note: task = "classification" with the classes listed in {out}: `train` refuses '
            "this config until classification lands (issue 13)",
            soft_wrap=True,
        )
    else:
        console.print(f"next: python -m training train --config {out}", soft_wrap=True)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    console = _console()
    config = load_config(args.config)
    _say(console, f"reading and validating {args.data or config.data.source or '(no data)'}")
    dataset = load_dataset(config, args.data)
    folds = config.evaluation.cv_folds
    _say(console, f"training {config.estimator.kind} with {folds}-fold CV")
    out = Path(args.out or f"artifacts/{config.name}")
    # sklambda.training.train reports once per fold, a regressor's intervals (their measured
    # coverage), and once after the final fit
    steps = folds + 1 + (config.task == "regression")
    with _progress(console, f"training {config.name}", total=steps) as step:
        trained = train_artifact(config, dataset, out, progress=step)
    manifest = trained.manifest
    console.print()
    _show(console, metrics_view(manifest.metrics))
    console.print()
    files = ", ".join(f"{a.key} ({a.bytes:,} bytes)" for a in manifest.artifacts)
    _say(console, f"wrote {out}/: {files} and manifest.json")
    _say(console, report_after_training(trained, config, dataset))
    console.print(Text(f"version {manifest.version}"), soft_wrap=True)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    console = _console()
    store = _store(args)
    _say(console, f"publishing {args.folder} to s3://{store.bucket}")
    folder = Path(args.folder)
    # Uploaded before the manifest: a version is never visible without its report.
    extras = {REPORT_FILE: folder / REPORT_FILE} if (folder / REPORT_FILE).is_file() else {}
    with _status(console, "uploading and verifying"):
        signer = _signer(args)
        manifest = store.publish(folder, signer, extras)
    sha = manifest.artifact.sha256[:12]
    signed = f", signed with {signer.key_id}" if signer else ", unsigned"
    _say(
        console,
        f"uploaded and verified {manifest.name} {manifest.version} (sha256 {sha}…{signed})",
    )
    report = report_key(store, manifest.name, manifest.version)
    _say(console, f"model report: s3://{store.bucket}/{report}" if extras else "no model report")
    if args.promote:
        record = store.promote(manifest.name, manifest.version, args.alias)
        previous = record.previous or "none"
        _say(console, f"alias {args.alias} -> {record.version} (previous: {previous})")
    console.print(Text(f"version {manifest.version}"), soft_wrap=True)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    store = _store(args)
    _require_model(store, args.model)
    record = store.promote(args.model, args.version, args.alias, verifier=_verifier(args))
    previous = record.previous or "none"
    _say(_console(), f"{args.model}: alias {args.alias} -> {record.version} (previous: {previous})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    _require_model(store, args.model)
    record = store.rollback(args.model, args.alias, _verifier(args))
    _say(_console(), f"{args.model}: alias {args.alias} rolled back to {record.version}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.model:
        _require_model(store, args.model)
    models = []
    for name in [args.model] if args.model else store.model_names():
        record = store.alias(name, args.alias)
        manifests = [store.manifest(name, version) for version in store.versions(name)]
        models.append((name, record.version if record else None, manifests))
    if args.json:
        _print_json(
            {
                "bucket": store.bucket,
                "alias": args.alias,
                "models": [
                    _model_json(name, args.alias, aliased, manifests)
                    for name, aliased, manifests in models
                ],
            }
        )
        return 0
    console = _console()
    if not models:
        console.print(f"no models in s3://{store.bucket}", soft_wrap=True)
    for name, aliased, manifests in models:
        _show(console, versions_view(name, manifests, args.alias, aliased))
    return 0


def _model_json(
    name: str, alias: str, aliased: str | None, manifests: list[Manifest]
) -> dict[str, Any]:
    return {
        "name": name,
        "aliases": {alias: aliased},
        "versions": [
            {
                "version": m.version,
                "created_at": m.created_at,
                "estimator": m.estimator["kind"],
                "aliases": [alias] if m.version == aliased else [],
                "metrics": {
                    "primary": m.metrics.get("primary"),
                    "cv_mean": {
                        k: m.metrics["cv"][k]["mean"] for k in _names(m.metrics, m.metrics["cv"])
                    },
                    "holdout": {k: m.metrics["holdout"].get(k) for k in _names(m.metrics)},
                },
            }
            for m in manifests
        ],
    }


def cmd_retrain(args: argparse.Namespace) -> int:
    from sklambda.retrain import Retrainer, RetrainRequest

    console = _console()
    store = _store(args)
    _require_model(store, args.model)
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
        _say(console, f"{phase}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))

    source = args.dataset_key or f"datasets/{args.model}/"
    _say(console, f"retraining {args.model} from s3://{store.bucket}/{source}")
    record = Retrainer(store, log=log, signer=_signer(args), verifier=_verifier(args)).run(request)
    console.print()
    _show(console, run_view(record.as_dict()))
    return 1 if record.status == "failed" else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Download a version's report.html (training.report) and print its path."""
    store = _store(args)
    if args.model:
        _require_model(store, args.model)
    name = args.model or find_model(store, args.version)
    out = Path(args.out) if args.out else default_report_path(name, args.version)
    path = download_report(store, name, args.version, out)
    _say(_console(stderr=True), f"model report of {name} {args.version}:")
    print(path)
    if args.open and not open_in_browser(path):
        _say(_console(stderr=True), "no web browser found here: open the file above")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    _require_model(store, args.model)
    manifest = store.resolve(args.model, args.alias, args.version)
    if args.json:
        _print_json(manifest.model_dump(mode="json"))
    else:
        _show(_console(), manifest_view(manifest))
    return 0


# --- output --------------------------------------------------------------------------------
# Each view is a rich renderable (coloured on a terminal); the format_* functions are the same
# view as plain text.


def format_metric(name: str, value: float | None) -> str:
    """The one number format of every table: ratios (r2, mape) and log-scale figures (r2_log,
    rmse_log) to 4 decimals, errors in the target's units (rmse, mae) to 1 decimal with
    thousands separators; "-" when missing."""
    if value is None:
        return "-"
    return f"{value:.4f}" if name in RATIO_METRICS else f"{value:,.1f}"


def _names(metrics: dict[str, Any], present: dict[str, Any] | None = None) -> list[str]:
    """The metrics a table shows, in order: a classifier's (accuracy, ..., log loss, Brier) or a
    regressor's (r2, rmse, mae, mape); of them, those in `present` when given."""
    classifier = "confusion_matrix" in metrics or "accuracy" in metrics.get("holdout", {})
    names = CLASS_METRICS if classifier else METRICS
    return [n for n in names if present is None or n in present]


def _table(*headers: str) -> Table:
    """A table whose first column names the row and whose other columns hold numbers."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column(headers[0], style="cyan", no_wrap=True)
    for header in headers[1:]:
        table.add_column(header, justify="right", no_wrap=True)
    return table


def metrics_view(metrics: dict[str, Any]) -> RenderableType:
    """CV mean and sd and the holdout, per metric (for a log target also on the log scale), what
    predicting the mean scores on the same holdout and the shipped model's in-sample fit when
    the manifest has them; the primary metric in bold."""
    baseline, fit = metrics.get("baseline"), metrics.get("fit")
    extra = (["baseline"] if baseline else []) + (["in-sample"] if fit else [])
    table = _table("metric", "cv mean", "cv sd", "holdout", *extra)
    names = _names(metrics, metrics["cv"])
    for name in [*names, *(n for n in LOG_METRICS if n in metrics["cv"])]:
        cv = metrics["cv"][name]
        table.add_row(
            name,
            format_metric(name, cv["mean"]),
            format_metric(name, cv["sd"]),
            format_metric(name, metrics["holdout"].get(name)),
            *([format_metric(name, baseline.get(name))] if baseline else []),
            *([format_metric(name, fit.get(name))] if fit else []),
            style="bold" if name == metrics.get("primary") else None,
        )
    rows, fitted = metrics.get("rows", "?"), (fit or {}).get("rows")
    if fit and fitted == metrics.get("rows") != metrics["train_rows"]:  # final_fit all_rows
        shipped = (
            f"holdout {metrics['holdout_rows']}, scored by a fit on the other "
            f"{metrics['train_rows']}; the shipped model refitted on all {fitted} rows"
        )
    else:
        shipped = f"model fitted on {metrics['train_rows']}, holdout {metrics['holdout_rows']}"
    confusion = metrics.get("confusion_matrix")
    trivial = "the training class shares" if confusion else "the training mean"
    columns = ([f"baseline: predicting {trivial}"] if baseline else []) + (
        ["in-sample: the shipped model on the rows it was fitted on"] if fit else []
    )
    notes = [f"{metrics['cv_folds']}-fold CV on {rows} rows; {shipped}", "; ".join(columns)]
    parts: list[RenderableType] = [table]
    if confusion:
        parts.append(confusion_view(confusion))
    scales = metrics.get("scales", {})
    if any(n in scales for n in LOG_METRICS):
        notes.append(
            f"{', '.join(n for n in LOG_METRICS if n in scales)} on {scales[LOG_METRICS[0]]}; "
            f"the others on {scales['r2']}"
        )
    return Group(*parts, Text("\n".join(n for n in notes if n), style="dim"))


def confusion_view(confusion: dict[str, Any]) -> RenderableType:
    """The holdout's confusion matrix: a row per true label, a column per predicted label."""
    labels = [str(label) for label in confusion["labels"]]
    table = _table("true \\ predicted", *labels)
    for label, row in zip(labels, confusion["matrix"], strict=True):
        table.add_row(label, *(f"{count:,}" for count in row))
    return table


def format_metrics(metrics: dict[str, Any]) -> str:
    """metrics_view as plain text."""
    return _plain(metrics_view(metrics))


def versions_view(
    name: str, manifests: list[Manifest], alias: str, aliased: str | None
) -> RenderableType:
    """A model's versions, oldest first, with key metrics; the alias marks its version."""
    if not manifests:
        return Text.assemble((name, "bold"), "  (no versions)")
    # A regressor's r2 and rmse; a classifier's accuracy and log loss.
    shown = ("r2", "rmse") if manifests[-1].task == "regression" else ("accuracy", "log_loss")
    table = _table("version")
    table.add_column("estimator", no_wrap=True)
    for header in (f"cv {shown[0]}", f"holdout {shown[0]}", f"holdout {shown[1]}"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("alias", no_wrap=True)
    table.title, table.title_justify, table.title_style = name, "left", "bold"
    for m in manifests:
        marked = m.version == aliased
        table.add_row(
            m.version,
            m.estimator["kind"],
            format_metric(shown[0], (m.metrics["cv"].get(shown[0]) or {}).get("mean")),
            format_metric(shown[0], m.metrics["holdout"].get(shown[0])),
            format_metric(shown[1], m.metrics["holdout"].get(shown[1])),
            Text(alias, style="bold green") if marked else "",
        )
    return table


def manifest_view(m: Manifest) -> RenderableType:
    """A version's manifest: what it is, what it was trained on, its files and metrics."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column()
    feats = ", ".join(
        f"{f['name']}:{f['type']}" + ("(log)" if f.get("transform") == "log" else "")
        for f in m.features
    )
    grid.add_row("estimator", m.estimator["class"])
    if m.classes is not None:
        pairs = zip(m.classes.labels, m.classes.counts, strict=True)
        classes = ", ".join(f"{label} ({count:,})" for label, count in pairs)
        rule = "most probable"
        if m.classes.threshold is not None:
            rule = f"{m.classes.positive} when its probability >= {m.classes.threshold:g}"
        grid.add_row("target", f"{m.target.name} (classes: {classes}; predicts: {rule})")
    else:
        grid.add_row("target", f"{m.target.name} (transform: {m.target.transform})")
    grid.add_row("features", feats)
    for a in m.artifacts:
        served = "  (served: numpy, no scikit-learn)" if a.format == "npz" else ""
        grid.add_row(a.key, f"{a.bytes:,} bytes, sha256 {a.sha256}{served}")
    grid.add_row("runtime", ", ".join(f"{k} {v}" for k, v in m.runtime.items()))
    grid.add_row("data", f"{m.data.source} ({m.data.rows} rows, sha256 {m.data.sha256[:12]}…)")
    if m.intervals is not None:
        grid.add_row("intervals", m.intervals.summary())
    grid.add_row("parent", m.parent_version or "-")
    title = Text.assemble((m.name, "bold"), " ", (m.version, "bold green"))
    title.append(f"  (created {m.created_at})", style="dim")
    return Group(title, Padding(grid, (0, 0, 0, 2)), Text(), metrics_view(m.metrics))


def describe(m: Manifest) -> str:
    """manifest_view as plain text."""
    return _plain(manifest_view(m))


def run_view(run: dict[str, Any]) -> RenderableType:
    """A retrain run record (RunRecord.as_dict(), or the retrain function's reply): the decision
    and its reason, both sets of holdout metrics, and both versions."""
    status = str(run["status"])
    head = Text.assemble(
        f"run {run['run_id']}: ",
        (status.upper(), STATUS_STYLES.get(status, "bold")),
        f" - {run['reason']}",
        no_wrap=True,
        overflow="ignore",
    )
    parts: list[RenderableType] = [head]
    champion = run["champion"].get("holdout") or {}
    challenger = (run["challenger"].get("metrics") or {}).get("holdout") or {}
    if champion or challenger:
        table = _table("holdout", "champion", "challenger")
        for name in _names({"holdout": challenger or champion}):
            table.add_row(
                name,
                format_metric(name, champion.get(name)),
                format_metric(name, challenger.get(name)),
            )
        parts.append(table)
    versions = (
        f"champion {run['champion'].get('version', '-')}, "
        f"challenger {run['challenger'].get('version', '-')}"
    )
    parts.append(Text(versions, style="dim"))
    if run["champion"].get("scored_on") == "recorded_holdout":  # fitted on every row
        parts.append(Text(f"champion scored by {run['champion']['scoring']}", style="dim"))
    return Group(*parts)


def format_run(run: dict[str, Any]) -> str:
    """run_view as plain text (a str, no colour codes): print it anywhere. For colour on a
    terminal, print run_view(run) with a rich Console instead."""
    return _plain(run_view(run))


INIT_STYLES = {"feature": "green", "target": "bold"}


def init_view(inference: Inference) -> RenderableType:
    """One row per CSV column: the type its values read as, the share of empty cells, its
    levels or range, and what the config does with it (feature, target, or why left out)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("column", style="cyan", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("missing", justify="right", no_wrap=True)
    table.add_column("levels or range", no_wrap=True, max_width=60)
    table.add_column("decision", no_wrap=True)
    for c in inference.columns:
        decision = c.decision if c.decision in INIT_STYLES else f"left out: {c.decision}"
        if c.transform == "log":
            decision += " (log)"
        table.add_row(
            c.name or '""',
            c.kind,
            c.empty_share,
            c.described,
            Text(decision, style=INIT_STYLES.get(c.decision, "yellow")),
        )
    return Group(table, Text(f"estimator {inference.estimator.kind}: {inference.estimator.why}"))


def format_init(inference: Inference) -> str:
    """init_view as plain text."""
    return _plain(init_view(inference))


# --- arguments -----------------------------------------------------------------------------


# --- batch transform -------------------------------------------------------------------------


def _stepfunctions() -> Any:
    """The Step Functions client (tests replace it with tools.local.statemachine's stand-in)."""
    import boto3

    return boto3.client("stepfunctions")


def _state_machine(args: argparse.Namespace) -> str:
    arn = args.state_machine or os.environ.get("BATCH_STATE_MACHINE_ARN")
    if not arn:
        raise SklambdaError(
            "no state machine: pass --state-machine or set BATCH_STATE_MACHINE_ARN (the "
            "stack's BatchTransformStateMachineArn output)",
            status=2,
            code="usage",
        )
    return str(arn)


def _execution_arn(machine: str, job: str) -> str:
    return machine.replace(":stateMachine:", ":execution:", 1) + ":" + job


def _batch_state(sfn: Any, s3: Any, bucket: str, machine: str, job: str) -> dict[str, Any]:
    """A job's status, its batches done so far, and its record once written."""
    arn = _execution_arn(machine, job)
    execution = sfn.describe_execution(executionArn=arn)
    state: dict[str, Any] = {"job_id": job, "status": execution["status"]}
    for run in sfn.list_map_runs(executionArn=arn).get("mapRuns", []):
        counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"])["executionCounts"]
        state["batches"] = {k: counts[k] for k in ("succeeded", "failed", "total")}
    if execution["status"] != "RUNNING":
        for name in ("_SUCCESS.json", "_FAILED.json"):
            try:
                body = s3.get_object(Bucket=bucket, Key=f"batch/{job}/{name}")["Body"].read()
            except ClientError:
                continue
            state["record"] = json.loads(body)
    return state


def _batch_line(state: dict[str, Any]) -> str:
    batches = state.get("batches")
    done = (
        f"; batches {batches['succeeded'] + batches['failed']:,}/{batches['total']:,}"
        f" ({batches['failed']:,} failed)"
        if batches
        else ""
    )
    record = state.get("record")
    rows = (
        f"; rows in {record['rows_in']:,}, out {record['rows_out']:,}, rejected "
        f"{record['rows_rejected']:,}, failed {record['rows_failed']:,}"
        if record
        else ""
    )
    return f"job {state['job_id']}: {state['status']}{done}{rows}"


def cmd_batch_submit(args: argparse.Namespace) -> int:
    parts = urlsplit(args.input)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key.startswith("batch/in/"):
        raise SklambdaError(
            "--input must be s3://<model bucket>/batch/in/<file>", status=2, code="usage"
        )
    machine = _state_machine(args)
    job = args.job or time.strftime("job-%Y%m%dT%H%M%SZ", time.gmtime())
    validate_name("job id", job)
    sfn = _stepfunctions()
    sfn.start_execution(stateMachineArn=machine, name=job, input=json.dumps({"key": key}))
    console = _console(stderr=True)
    _say(console, f"job {job} started on s3://{parts.netloc}/{key}")
    if not args.wait:
        print(job)
        return 0
    s3 = _store(argparse.Namespace(bucket=parts.netloc)).s3
    while True:
        state = _batch_state(sfn, s3, parts.netloc, machine, job)
        if state["status"] != "RUNNING":
            break
        _say(console, _batch_line(state))
        time.sleep(args.poll)
    print(_batch_line(state))
    return 0 if state["status"] == "SUCCEEDED" else 1


def cmd_batch_status(args: argparse.Namespace) -> int:
    bucket = _bucket_name(args)
    store = _store(args)
    state = _batch_state(_stepfunctions(), store.s3, bucket or "", _state_machine(args), args.job)
    if args.json:
        _print_json(state)
    else:
        print(_batch_line(state))
    return 0


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

    def registry(p: argparse.ArgumentParser, model: bool = True, signing: str = "") -> None:
        """The registry's options; `signing`: what --signing-key is for, when the command
        signs or verifies."""
        p.add_argument("--bucket", help="S3 bucket of the registry (default: $MODEL_BUCKET)")
        p.add_argument(
            "--alias", default=DEFAULT_ALIAS, help=f"alias name (default: {DEFAULT_ALIAS})"
        )
        if model:
            p.add_argument("--model", required=True, help="model name, e.g. house-prices")
        if signing:
            p.add_argument(
                "--signing-key",
                help=f"KMS key (id, ARN or alias) to {signing} (default: $MODEL_SIGNING_KEY_ID)",
            )

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON (only JSON) to stdout")

    p = command(
        "init",
        cmd_init,
        "write a commented config for a CSV: column types, empty cells, columns left out and "
        "why, the target's transform, an estimator",
    )
    p.add_argument("--data", required=True, help="CSV file with a header row")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument(
        "--task",
        choices=("regression", "classification"),
        default="regression",
        help="regression (default) or classification (train takes it from issue 13 on)",
    )
    p.add_argument("--out", help="config file to write (default: configs/<CSV name>.toml)")
    p.add_argument("--name", help="model name (default: the --out file's name)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    p = command(
        "train",
        cmd_train,
        "train and evaluate a model, write model.joblib + manifest.json (+ report.html)",
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
    registry(p, model=False, signing="sign the version with")

    p = command(
        "promote", cmd_promote, f"point an alias (default: {DEFAULT_ALIAS}) at a published version"
    )
    p.add_argument("--version", required=True, help="version to serve")
    registry(p, signing="verify the version's signature with")

    p = command("rollback", cmd_rollback, "point an alias back to the version it had before")
    registry(p, signing="verify the version's signature with")

    p = command("list", cmd_list, "list models and versions in the bucket")
    p.add_argument("--model", help="only this model")
    p.add_argument("--bucket", help="S3 bucket of the registry (default: $MODEL_BUCKET)")
    p.add_argument(
        "--alias", default=DEFAULT_ALIAS, help=f"alias to mark (default: {DEFAULT_ALIAS})"
    )
    json_flag(p)

    p = command(
        "retrain",
        cmd_retrain,
        "retrain from the bucket's datasets/<model>/ with the champion's config; "
        "promote only if not worse",
    )
    registry(p, signing="verify the champion and sign the challenger with")
    p.add_argument("--dataset-key", help="one CSV key instead of every CSV under datasets/<model>/")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="how much worse the primary metric may be (default 0.01)",
    )
    p.add_argument("--floor", type=float, help="absolute bar for the primary metric")

    p = command("show", cmd_show, f"show a version's manifest (default: the {DEFAULT_ALIAS} one)")
    p.add_argument("--version", help="a version (default: the one the alias points to)")
    registry(p)
    json_flag(p)

    _commands_apart(sub)
    return parser


def _commands_apart(sub: Any) -> None:
    """The commands declared in functions of their own (_parser is at ruff's statement limit)."""
    _report_command(sub)
    _batch_commands(sub)


def _report_command(sub: Any) -> None:
    """`report VERSION`."""
    about = "download a version's model report (report.html) and print its path"
    p = sub.add_parser("report", help=about, description=about)
    p.set_defaults(run=cmd_report)
    p.add_argument("version", help="the version (python -m training list shows them)")
    p.add_argument("--model", help="model name (default: the model that has the version)")
    p.add_argument("--bucket", help="S3 bucket of the registry (default: $MODEL_BUCKET)")
    p.add_argument(
        "--out", help="file to write (default: artifacts/reports/<model>-<version>.html)"
    )
    p.add_argument("--open", action="store_true", help="also open it in a web browser")


def _batch_commands(sub: Any) -> None:
    """`batch submit` and `batch status`."""

    def state_machine(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--state-machine",
            help="BatchTransformStateMachine's ARN (default: $BATCH_STATE_MACHINE_ARN)",
        )

    batch = sub.add_parser("batch", help="batch transform: score a file in S3 (Step Functions)")
    batch_sub = batch.add_subparsers(title="batch commands", metavar="COMMAND", required=True)
    p = batch_sub.add_parser("submit", help="start a job on s3://<bucket>/batch/in/<file>")
    p.set_defaults(run=cmd_batch_submit)
    p.add_argument("--input", required=True, help="s3://<model bucket>/batch/in/<file>")
    p.add_argument("--job", help="job id (default: job-<UTC time>)")
    p.add_argument("--wait", action="store_true", help="show progress until the job ends")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between checks (--wait)")
    state_machine(p)
    p = batch_sub.add_parser("status", help="a job's status, progress and counts")
    p.set_defaults(run=cmd_batch_status)
    p.add_argument("job", help="the job id (the execution name)")
    p.add_argument("--bucket", help="the model bucket (default: $MODEL_BUCKET)")
    p.add_argument("--json", action="store_true", help="print JSON (only JSON) to stdout")
    state_machine(p)
