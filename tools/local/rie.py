"""Run a Lambda function on the host under AWS's Runtime Interface Emulator (RIE).

The RIE binary ships inside the aws-sam-cli wheel (it is what `sam local` runs in its containers);
`awslambdaric` is the real Python runtime client. Each `FunctionProcess` is one execution
environment: a fresh one is a cold start, later invocations are warm.

The RIE serves one invocation at a time: a second concurrent POST makes it panic ("ReserveFailed:
AlreadyReserved", then a nil-pointer crash that kills the process). So each process is used by one
caller at a time, and `FunctionPool` scales out to several processes, as Lambda does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tools.local.loopback import FAKE_CREDENTIALS, free_port, wait_for_http
from tools.local.template import FunctionSpec

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
# Host variables a process needs to run at all; everything else (AWS_PROFILE, real credentials)
# stays out of the function, which sees only what Lambda would give it.
HOST_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")

LogSink = Callable[[str], None]
_print_lock = threading.Lock()


def print_log(line: str) -> None:
    with _print_lock:
        print(line, file=sys.stderr, flush=True)


class FunctionError(RuntimeError):
    """The function raised, timed out or crashed; `payload` is what the RIE returned."""

    def __init__(self, message: str, payload: Any = None):
        super().__init__(message)
        self.payload = payload


class PoolExhausted(RuntimeError):
    """Every process of a function stayed busy for longer than the wait allowed."""


def rie_binary() -> Path:
    """The RIE for this machine, from the installed aws-sam-cli."""
    spec = importlib.util.find_spec("samcli")  # does not import samcli
    if spec is None or spec.origin is None:
        raise RuntimeError("aws-sam-cli is not installed; it ships the Lambda RIE")
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
    machine = arch.get(platform.machine().lower())
    binary = Path(spec.origin).parent / "local" / "rapid" / f"aws-lambda-rie-{machine}"
    if sys.platform != "linux" or machine is None or not binary.is_file():
        raise RuntimeError(f"no Lambda RIE for {sys.platform}/{platform.machine()} (Linux only)")
    return binary


def function_environment(
    spec: FunctionSpec, s3_endpoint: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment Lambda (as `sam local` builds it) gives the function, plus local S3."""
    env = {name: os.environ[name] for name in HOST_VARIABLES if name in os.environ}
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            # The variables sam local sets (samcli/local/lambdafn/env_vars.py) ...
            "AWS_SAM_LOCAL": "true",  # also turns Powertools' X-Ray tracer off
            "AWS_REGION": FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
            "AWS_ACCOUNT_ID": "123456789012",
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),  # the RIE enforces it
            "AWS_LAMBDA_FUNCTION_HANDLER": spec.handler,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"aws/lambda/{spec.logical_id}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            # ... and the ones the Lambda image sets.
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            # /var/task first, then each layer's /opt/python; the venv's packages come after.
            "PYTHONPATH": os.pathsep.join(str(p) for p in (spec.code_dir, *spec.layer_dirs)),
            "PYTHONUNBUFFERED": "1",  # logs appear as they are written
        }
    )
    if s3_endpoint:
        env["AWS_ENDPOINT_URL"] = s3_endpoint
    env.update(spec.environment)
    env.update(extra or {})
    return env


def _children(pid: int) -> list[int]:
    """Child process ids of `pid` (Linux /proc; the RIE runs only on Linux)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            children += [int(child) for child in task.read_text().split()]
    return children


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by `pid`, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)


class FunctionProcess:
    """One execution environment: the RIE on a free 127.0.0.1 port running `awslambdaric`."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        s3_endpoint: str | None = None,
        name: str | None = None,
        log: LogSink = print_log,
        extra_env: Mapping[str, str] | None = None,
    ):
        self.spec = spec
        self.name = name or spec.logical_id
        self.env = function_environment(spec, s3_endpoint, extra_env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 20.0) -> None:
        binary = rie_binary()
        for attempt in range(3):  # a free port can be taken between probe and bind: retry
            port, api_port = free_port(), free_port()
            command = [
                str(binary),
                "--log-level",
                "error",
                # Both listeners on loopback: the RIE's default is 0.0.0.0:8080.
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{port}",
                "--runtime-api-address",
                f"127.0.0.1:{api_port}",
                sys.executable,
                "-m",
                "awslambdaric",
                self.spec.handler,
            ]
            self.proc = subprocess.Popen(
                command,
                cwd=self.spec.code_dir,  # Lambda's working directory is /var/task
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a group of its own: Ctrl-C reaches the runner only
            )
            threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
            self.url = f"http://127.0.0.1:{port}"
            try:
                # Any path but the invocation one: a GET there would invoke the function.
                wait_for_http(self.url + "/ready", timeout=timeout, proc=self.proc)
                return
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        """Stream the function's logs (and the RIE's START/END/REPORT lines) with a prefix."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.log(f"[{self.name}] {raw.decode(errors='replace').rstrip()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def invoke(self, event: Any) -> Any:
        """Invoke once and return the parsed response; FunctionError if the function failed."""
        if not self.alive:
            raise FunctionError(f"{self.name}: the function process is not running")
        request = urllib.request.Request(
            self.url + INVOKE_PATH, data=json.dumps(event).encode(), method="POST"
        )
        try:
            # The RIE enforces the function's timeout; the margin covers a slow cold start.
            with urllib.request.urlopen(request, timeout=self.spec.timeout + 10) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            # e.g. 502 when the runtime fails to start (an import error): the RIE itself is fine
            # and starts the runtime again on the next invocation.
            with error:
                detail = error.read().decode(errors="replace")
            try:
                payload = json.loads(detail)
            except ValueError:
                payload = None
            message = f"{self.name}: HTTP {error.code} from the RIE: {detail}"
            raise FunctionError(message, payload) from None
        except OSError as exc:
            self.stop()  # a hung or crashed environment is not reused
            raise FunctionError(f"{self.name}: invocation failed: {exc}") from exc
        try:
            payload = json.loads(body)
        except ValueError:
            # e.g. "Task timed out after 30.00 seconds": the RIE's plain-text reply
            raise FunctionError(f"{self.name}: {body.decode(errors='replace')}") from None
        # The RIE answers 200 for errors too (no X-Amz-Function-Error header): recognise the
        # error document the runtime posts.
        if (
            isinstance(payload, dict)
            and {"errorType", "errorMessage"} <= payload.keys()
            and "statusCode" not in payload
        ):
            message = f"{payload['errorType']}: {payload['errorMessage']}"
            raise FunctionError(f"{self.name}: {message}", payload)
        return payload

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        # The RIE starts the runtime in a process group of its own; on SIGTERM it stops it, but
        # if the RIE has to be killed, the runtime is stopped here.
        runtimes = _children(proc.pid)
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        for pid in runtimes:
            _signal_group(pid, signal.SIGKILL)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FunctionPool:
    """Up to `size` execution environments of one function, each serving one call at a time.

    A call takes an idle process, or starts a new one (a cold start) while fewer than `size`
    exist, or waits for one to be released; a process that failed hard is replaced.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        size: int = 4,
        s3_endpoint: str | None = None,
        log: LogSink = print_log,
        wait: float | None = None,
    ):
        self.spec = spec
        self.size = size
        self.s3_endpoint = s3_endpoint
        self.log = log
        self.wait = wait if wait is not None else spec.timeout + 30.0
        self._idle: list[FunctionProcess] = []
        self._all: list[FunctionProcess] = []
        self._started = 0
        self._cond = threading.Condition()
        self._closed = False

    def _acquire(self) -> FunctionProcess:
        deadline = time.monotonic() + self.wait
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError(f"{self.spec.logical_id}: the runner is stopping")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self.size:
                    self._started += 1
                    name = f"{self.spec.logical_id}#{self._started}"
                    process = FunctionProcess(
                        self.spec, s3_endpoint=self.s3_endpoint, name=name, log=self.log
                    )
                    self._all.append(process)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolExhausted(f"{self.spec.logical_id}: all {self.size} busy")
                self._cond.wait(remaining)
        try:
            process.start()  # outside the lock: other callers may use idle processes meanwhile
        except BaseException:
            self._release(process)
            raise
        return process

    def _release(self, process: FunctionProcess) -> None:
        with self._cond:
            if process.alive and not self._closed:
                self._idle.append(process)
            else:
                process.stop()
                if process in self._all:
                    self._all.remove(process)
            self._cond.notify()

    def invoke(self, event: Any) -> Any:
        process = self._acquire()
        try:
            return process.invoke(event)
        finally:
            self._release(process)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            processes, self._all, self._idle = list(self._all), [], []
            self._cond.notify_all()
        for process in processes:
            process.stop()
