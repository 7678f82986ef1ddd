"""The local runner's Python API: `LocalApi` (serve the template's routes) and `invoke_once`.

with LocalApi(Path("template.yaml"), env_vars=Path("events/env.json"), port=0) as api:
    urllib.request.urlopen(api.url + "/health")
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tools.local.api import LocalApiServer, serve_in_thread
from tools.local.loopback import FAKE_CREDENTIALS
from tools.local.rie import FunctionError, FunctionPool, FunctionProcess, LogSink, print_log
from tools.local.s3server import create_delivery_stream, moto_server, seed_registry
from tools.local.template import DEFAULT_BUCKET, App, load_env_vars, load_template

ROOT = Path(__file__).resolve().parents[2]
SEED_CONFIG = ROOT / "training" / "configs" / "house_prices.toml"
SEED_WORKDIR = ROOT / ".demo"

EnvVars = Path | Mapping[str, Mapping[str, Any]] | None


def model_bucket(app: App, function_id: str | None = None) -> str:
    """The bucket the functions read models from: what MODEL_BUCKET resolves to."""
    for spec in app.functions.values():
        if function_id in (None, spec.logical_id) and spec.environment.get("MODEL_BUCKET"):
            return spec.environment["MODEL_BUCKET"]
    return DEFAULT_BUCKET


def runtime_note(app: App) -> str:
    runtimes = sorted({spec.runtime for spec in app.functions.values()})
    version = ".".join(map(str, sys.version_info[:3]))
    return (
        f"functions run on Python {version} ({sys.executable}) under the AWS Lambda RIE; "
        f"the template's runtime is {', '.join(runtimes) or 'unset'}"
    )


def start_capture(app: App, endpoint: str, bucket: str, rate: float) -> list[str]:
    """Prediction capture through the local moto server: create the template's delivery
    streams there (tools.local.s3server says how they differ from Firehose) and point each
    function that puts to one (it declares CAPTURE_STREAM) at it, sampling `rate` of its
    requests. What captures where, one line each (none: the template has no stream)."""
    if not app.delivery_streams:
        return []
    prefixes = {
        name: create_delivery_stream(endpoint, bucket, name, prefix)
        for name, prefix in app.delivery_streams.items()
    }
    lines = []
    for logical_id, spec in list(app.functions.items()):
        if "CAPTURE_STREAM" not in spec.environment:
            continue
        stream = spec.environment["CAPTURE_STREAM"]
        if stream not in prefixes:  # "" (--env-vars turned it off) or a name from elsewhere
            stream = next(iter(prefixes))
        environment = {
            **spec.environment,
            "CAPTURE_STREAM": stream,
            "CAPTURE_SAMPLE_RATE": f"{rate:g}",
        }
        app.functions[logical_id] = dataclasses.replace(spec, environment=environment)
        lines.append(
            f"{logical_id} captures {rate:.0%} of its requests -> Firehose {stream} (moto) -> "
            f"s3://{bucket}/{prefixes[stream]}YYYY/MM/DD/HH/"
        )
    return lines


def starts_own_s3(endpoint: str | None) -> bool:
    """Whether `local_s3(endpoint, ...)` starts a moto server (no endpoint, no AWS_ENDPOINT_URL)."""
    return not (endpoint or os.environ.get("AWS_ENDPOINT_URL"))


@contextmanager
def local_s3(
    endpoint: str | None,
    bucket: str,
    seed: Path | None,
    workdir: Path = SEED_WORKDIR,
    log: LogSink = print_log,
) -> Iterator[str]:
    """`endpoint`, else $AWS_ENDPOINT_URL, else a fresh moto server seeded with `seed`'s model
    (trained in `workdir`), its data under datasets/<model>/ for a retrain."""
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        yield endpoint
        return
    with moto_server() as endpoint:
        if seed is not None:
            for name, value in FAKE_CREDENTIALS.items():
                os.environ.setdefault(name, value)  # boto3 must sign, moto ignores what
            log(f"[local] training {seed.name} and publishing it to s3://{bucket} ...")
            version = seed_registry(endpoint, bucket, seed, workdir)
            log(f"[local] promoted version {version}")
        yield endpoint


def _load(
    template: Path, env_vars: EnvVars, built: bool, shell_env: Mapping[str, str] | None
) -> App:
    overrides = load_env_vars(env_vars) if isinstance(env_vars, Path | str) else env_vars
    app = load_template(Path(template), env_vars=overrides, shell_env=shell_env, built=built)
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if built and any(spec.runtime != here for spec in app.functions.values()):
        app.warnings.append(
            f".aws-sam/build holds packages built for the template's runtime; "
            f"compiled ones may not import on {here}"
        )
    for warning in app.warnings:
        print_log(f"[local] warning: {warning}")
    return app


class LocalApi:
    """Serve the template's API routes on 127.0.0.1:`port` (0 = a free port) until exit."""

    def __init__(
        self,
        template: Path,
        *,
        env_vars: EnvVars = None,
        port: int = 3000,
        api_key: str | None = None,
        built: bool = False,
        s3_endpoint: str | None = None,
        seed: Path | None = SEED_CONFIG,
        seed_workdir: Path = SEED_WORKDIR,
        concurrency: int = 4,
        shell_env: Mapping[str, str] | None = None,
        log: LogSink = print_log,
        capture_rate: float | None = None,
    ):
        """`capture_rate`: capture that share of the predict requests through a delivery stream
        in the local moto server (start_capture); None: as the template and env vars say."""
        self.app = _load(template, env_vars, built, shell_env)
        self.port = port
        self.api_key = api_key or None
        self.s3_endpoint = s3_endpoint
        self.seed = seed
        self.seed_workdir = seed_workdir
        self.own_s3 = False  # whether the S3 endpoint is a moto server this runner started
        self.concurrency = concurrency
        self.log = log
        self.bucket = model_bucket(self.app)
        self.endpoint = ""
        self.capture_rate = capture_rate
        self.capture: list[str] = []  # what captures where (start_capture)
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._stack = ExitStack()
        self.server: LocalApiServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "use LocalApi as a context manager"
        return f"http://127.0.0.1:{self.server.port}"

    def invoke(self, function_id: str, event: dict[str, Any], timeout: float | None = None) -> Any:
        """Invoke a function of the template in one of its execution environments (a new one
        is a cold start); `timeout` caps the wait for the reply (see FunctionProcess.invoke)."""
        with self._lock:  # one pool per function, made on its first request
            if self._closed:
                raise FunctionError("the local API is stopping")
            pool = self._pools.get(function_id)
            if pool is None:
                spec = self.app.functions[function_id]
                pool = FunctionPool(
                    spec, size=self.concurrency, s3_endpoint=self.endpoint, log=self.log
                )
                self._pools[function_id] = pool
        return pool.invoke(event, timeout)

    def __enter__(self) -> Self:
        try:
            self.own_s3 = starts_own_s3(self.s3_endpoint)
            self.endpoint = self._stack.enter_context(
                local_s3(self.s3_endpoint, self.bucket, self.seed, self.seed_workdir, self.log)
            )
            if self.capture_rate is not None:
                self.capture = start_capture(
                    self.app, self.endpoint, self.bucket, self.capture_rate
                )
            try:
                self.server = LocalApiServer(
                    self.port, self.app.routes, self.invoke, self.api_key, self.log
                )
            except OSError as exc:
                raise OSError(f"cannot listen on 127.0.0.1:{self.port}: {exc.strerror}") from exc
            # Stopped in reverse: stop accepting requests, stop the functions, close the socket.
            self._stack.callback(self.server.server_close)
            self._stack.callback(self._close_pools)
            serve_in_thread(self.server)
            self._stack.callback(self.server.shutdown)
        except BaseException:
            self._stack.close()
            raise
        return self

    def _close_pools(self) -> None:
        with self._lock:
            self._closed = True  # a request still in flight must not start a new process
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()


def invoke_once(
    template: Path,
    function_id: str,
    event: Any,
    *,
    env_vars: EnvVars = None,
    built: bool = False,
    s3_endpoint: str | None = None,
    seed: Path | None = SEED_CONFIG,
    seed_workdir: Path = SEED_WORKDIR,
    shell_env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    log: LogSink = print_log,
) -> tuple[Any, float]:
    """Start a fresh execution environment (a cold start), invoke it once, stop it.

    Returns (response, milliseconds from process start to response); raises FunctionError.
    `timeout` caps the wait for the reply (default: the function's Timeout plus a margin).
    """
    app = _load(template, env_vars, built, shell_env)
    if function_id not in app.functions:
        known = ", ".join(app.functions) or "none"
        raise KeyError(f"no function {function_id!r} in {template} (functions: {known})")
    bucket = model_bucket(app, function_id)
    with local_s3(s3_endpoint, bucket, seed, seed_workdir, log) as endpoint:
        spec = app.functions[function_id]
        started = time.perf_counter()
        with FunctionProcess(spec, s3_endpoint=endpoint, log=log) as process:
            response = process.invoke(event, timeout)
            elapsed = (time.perf_counter() - started) * 1000
    return response, elapsed
