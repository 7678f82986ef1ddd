"""Docker-free `sam local`: serve the template's API, or invoke one function once.

    python -m tools.local serve [--port 3000] [--template template.yaml] [--env-vars FILE]
                                   [--api-key KEY] [--built] [--concurrency N]
                                   [--capture-rate SHARE]
    python -m tools.local invoke FUNCTION_ID EVENT_FILE [--env-vars FILE] [--built]

Functions run in their own processes under AWS's Lambda Runtime Interface Emulator (from the
aws-sam-cli wheel) with `awslambdaric`; S3 is a moto server on 127.0.0.1 with a freshly trained
model (and its data under datasets/<model>/, for a retrain), unless AWS_ENDPOINT_URL is set.
`serve` also captures predictions for real, through the template's CaptureStream created in that
moto server (every request by default: --capture-rate; tools/local/s3server.py says what differs
from Firehose), for MonitorFunction's drift reports.
Function logs go to stderr; each invocation's REPORT line holds the runner's own measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from tools.local.loopback import FAKE_CREDENTIALS, port_is_free
from tools.local.rie import FunctionError
from tools.local.runner import (
    SEED_CONFIG,
    SEED_WORKDIR,
    LocalApi,
    invoke_once,
    runtime_note,
    starts_own_s3,
)
from tools.local.template import Route, TemplateError

DEFAULT_API_KEY = "local-key"


def _example_body(events: Path, route: Route) -> str | None:
    """The body of an event file for `route` (events/<name>.json), to show a working curl."""
    stem = route.path.strip("/").replace("/", "_")
    for path in sorted(events.glob("*.json"), key=lambda p: (p.stem != stem, p.name)):
        try:
            event = json.loads(path.read_text())
        except ValueError:
            continue
        if (
            isinstance(event, dict)
            and event.get("resource") == route.path
            and event.get("httpMethod") == route.method
            and isinstance(event.get("body"), str)
            and not event.get("isBase64Encoded")
        ):
            body: str = event["body"]
            return body
    return None


def _curl(api: LocalApi, route: Route, events: Path) -> str:
    parts = ["curl", "-s"]
    body = _example_body(events, route)
    if route.method not in ("GET", "POST") or (route.method == "POST" and body is None):
        parts += ["-X", route.method]
    if route.api_key_required and api.api_key:
        parts += ["-H", f"x-api-key: {api.api_key}"]
    if body is not None:
        parts += ["-H", "Content-Type: application/json", "-d", body]
    parts.append(f"{api.url}{route.path}")
    return " ".join(shlex.quote(p) for p in parts)


def _exports(api: LocalApi) -> str:
    """The variables that point `python -m training` (boto3) at this S3 and bucket."""
    variables = {"AWS_ENDPOINT_URL": api.endpoint, "MODEL_BUCKET": api.bucket}
    if api.own_s3:
        variables |= FAKE_CREDENTIALS  # moto takes any; boto3 will not sign without some
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())


def _print_startup(api: LocalApi, template: Path) -> None:
    print(f"Local API for {template} on {api.url} (no Docker)", flush=True)
    print(f"  {runtime_note(api.app)}")
    s3 = "a moto server started for this session" if api.own_s3 else "from AWS_ENDPOINT_URL"
    print(f"  S3: {api.endpoint} ({s3}), bucket {api.bucket}")
    for line in api.capture:
        print(f"  capture: {line}")
    print("  routes:")
    for route in api.app.routes:
        lock = "  (x-api-key)" if route.api_key_required and api.api_key else ""
        print(f"    {route.method:6} {api.url}{route.path} -> {route.function_id}{lock}")
    print("  try, in another shell:")
    events = template.resolve().parent / "events"
    shown: set[str] = set()
    for route in api.app.routes:
        if route.method in shown:  # one example per method is enough
            continue
        shown.add(route.method)
        print("    " + _curl(api, route, events))
    print("  the training CLI against this S3 and bucket, in another shell:")
    print("    " + _exports(api))
    print("    .venv/bin/python -m training list")
    print("Ctrl-C to stop. Function logs and requests follow (stderr).", flush=True)


def _port_taken(port: int) -> str | None:
    """One line saying so if 127.0.0.1:`port` is taken, with a free one to use instead."""
    if port == 0 or port_is_free(port):
        return None
    other = next((p for p in range(port + 1, min(port + 100, 65536)) if port_is_free(p)), 0)
    hint = f"make serve PORT={other}" if other else "make serve PORT=<a free port>"
    return (
        f"error: 127.0.0.1:{port} is already in use (another `make serve`?); "
        f"stop it or choose another port: {hint}"
    )


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 to 1")
    return value


def _capture_rate(args: argparse.Namespace) -> float | None:
    """--capture-rate; by default every request when the runner starts its own moto server,
    else (AWS_ENDPOINT_URL) what the template and env vars say."""
    if args.capture_rate is not None:
        return float(args.capture_rate)
    return 1.0 if starts_own_s3(None) else None


def serve(args: argparse.Namespace) -> int:
    taken = _port_taken(args.port)  # before anything is trained or started
    if taken:
        print(taken, file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with LocalApi(
        args.template,
        env_vars=args.env_vars,
        port=args.port,
        api_key=args.api_key,
        built=args.built,
        seed=None if args.no_seed else SEED_CONFIG,
        seed_workdir=args.workdir,
        concurrency=args.concurrency,
        shell_env=os.environ,
        capture_rate=_capture_rate(args),
    ) as api:
        _print_startup(api, args.template)
        while not stop.wait(0.5):
            pass
        print("stopping ...", flush=True)
    return 0


def invoke(args: argparse.Namespace) -> int:
    event: Any = json.loads(Path(args.event).read_text())
    try:
        response, elapsed = invoke_once(
            args.template,
            args.function,
            event,
            env_vars=args.env_vars,
            built=args.built,
            seed=None if args.no_seed else SEED_CONFIG,
            seed_workdir=args.workdir,
            shell_env=os.environ,
        )
    except FunctionError as exc:
        print(f"[local] function error: {exc}", file=sys.stderr)
        if exc.payload is not None:
            print(json.dumps(exc.payload, indent=2))
        return 1
    print(json.dumps(response, indent=2))
    print(f"[local] cold start + invocation: {elapsed:.0f} ms", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--template", type=Path, default=Path("template.yaml"))
    common.add_argument("--env-vars", type=Path, help="sam local's --env-vars JSON file")
    common.add_argument(
        "--built", action="store_true", help="use .aws-sam/build (needs the runtime's Python)"
    )
    common.add_argument(
        "--no-seed", action="store_true", help="do not train and publish a model to the local S3"
    )
    common.add_argument(
        "--workdir",
        type=Path,
        default=SEED_WORKDIR,
        help=f"where the seeded model is trained (default {SEED_WORKDIR.name}/)",
    )
    p_serve = sub.add_parser("serve", parents=[common], help="serve the API routes on 127.0.0.1")
    p_serve.add_argument("--port", type=int, default=3000)
    p_serve.add_argument(
        "--api-key",
        default=DEFAULT_API_KEY,
        help=f"key for routes with ApiKeyRequired (default {DEFAULT_API_KEY}; '' = no check)",
    )
    p_serve.add_argument(
        "--concurrency", type=int, default=4, help="execution environments per function"
    )
    p_serve.add_argument(
        "--capture-rate",
        type=_share,
        help="share of predict requests captured through the local Firehose stream (default 1 "
        "with the runner's own S3; 0: none)",
    )
    p_invoke = sub.add_parser("invoke", parents=[common], help="invoke one function once")
    p_invoke.add_argument("function", metavar="FUNCTION_ID")
    p_invoke.add_argument("event", metavar="EVENT_FILE", type=Path)
    args = parser.parse_args(argv)
    try:
        return serve(args) if args.command == "serve" else invoke(args)
    except (TemplateError, KeyError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
