"""Docker-free `sam local`: serve the template's API, or invoke one function once.

    python -m tools.local serve [--port 3000] [--template template.yaml] [--env-vars FILE]
                                   [--api-key KEY] [--built] [--concurrency N]
    python -m tools.local invoke FUNCTION_ID EVENT_FILE [--env-vars FILE] [--built]

Functions run in their own processes under AWS's Lambda Runtime Interface Emulator (from the
aws-sam-cli wheel) with `awslambdaric`; S3 is a moto server on 127.0.0.1 with a freshly trained
model, unless AWS_ENDPOINT_URL is set.
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

from tools.local.rie import FunctionError
from tools.local.runner import SEED_CONFIG, LocalApi, invoke_once, runtime_note
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


def _print_startup(api: LocalApi, template: Path) -> None:
    print(f"Local API for {template} (no Docker)", flush=True)
    print(f"  {runtime_note(api.app)}")
    print(f"  S3: {api.endpoint}  bucket {api.bucket}")
    print("  routes:")
    for route in api.app.routes:
        lock = "  (x-api-key)" if route.api_key_required and api.api_key else ""
        print(f"    {route.method:6} {api.url}{route.path} -> {route.function_id}{lock}")
    print("  try:")
    events = template.resolve().parent / "events"
    shown: set[str] = set()
    for route in api.app.routes:
        if route.method in shown:  # one example per method is enough
            continue
        shown.add(route.method)
        parts = ["curl", "-s", "-X", route.method, f"{api.url}{route.path}"]
        if route.api_key_required and api.api_key:
            parts += ["-H", f"x-api-key: {api.api_key}"]
        body = _example_body(events, route)
        if body is not None:
            parts += ["-H", "Content-Type: application/json", "-d", body]
        print("    " + " ".join(shlex.quote(p) for p in parts))
    print("Ctrl-C to stop.", flush=True)


def serve(args: argparse.Namespace) -> int:
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
        concurrency=args.concurrency,
        shell_env=os.environ,
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
