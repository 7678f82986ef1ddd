"""Run a Lambda function on the host under AWS's Runtime Interface Emulator (RIE).

The RIE binary ships inside the aws-sam-cli wheel (it is what `sam local` runs in its containers);
`awslambdaric` is the real Python runtime client. Each `FunctionProcess` is one execution
environment: a fresh one is a cold start, later invocations are warm.

The RIE serves one invocation at a time: a second concurrent POST makes it panic ("ReserveFailed:
AlreadyReserved", then a nil-pointer crash that kills the process). So each process is used by one
caller at a time, and `FunctionPool` scales out to several processes, as Lambda does.

The RIE's REPORT line makes its figures up ("Max Memory Used" is the memory limit, "Init
Duration" a few hundredths of a millisecond beside a seconds-long cold start), so the runner drops
it and logs its own, with the same RequestId and only what it measured:

    REPORT RequestId: <id>  Round trip: <ms>  Cold start: <ms>  Peak RSS: <MiB>

Round trip: the invocation's POST to the RIE until its reply, as the runner timed it. Cold start
(the first invocation of a process only): from starting the RIE process until that first reply.
Peak RSS: the runtime process's high-water mark (VmHWM in /proc/<pid>/status) so far, as Lambda's
"Max Memory Used" is the environment's; left out where /proc cannot tell. Memory limits are not
enforced locally.
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
from dataclasses import dataclass
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
REPORT_PREFIX = "REPORT RequestId: "
START_PREFIX = "START RequestId: "
# The fields of the RIE's REPORT line that are not measured, or not measured as Lambda does.
MADE_UP_FIELDS = frozenset(
    {"Init Duration", "Duration", "Billed Duration", "Memory Size", "Max Memory Used"}
)
REPORT_WAIT = 1.0  # seconds to wait for the RIE's REPORT line after a reply (it comes ~1 ms later)


def print_log(line: str) -> None:
    with _print_lock:
        print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Measured:
    """What the runner measured for one invocation (see the module's docstring)."""

    round_trip_ms: float
    cold_start_ms: float | None = None
    peak_rss_bytes: int | None = None


def report_line(rie_line: str | None, measured: Measured, request_id: str | None = None) -> str:
    """The runner's REPORT line in place of the RIE's: the RIE's RequestId and any field it does
    not make up (e.g. "Status: timeout"), then the runner's own figures, tab-separated."""
    kept: list[str] = []
    if rie_line is not None:
        head, *rest = rie_line.rstrip().split("\t")
        request_id = head.removeprefix(REPORT_PREFIX).strip() or request_id
        kept = [f for f in rest if f.strip() and f.split(":", 1)[0].strip() not in MADE_UP_FIELDS]
    figures = [f"Round trip: {measured.round_trip_ms:.2f} ms"]
    if measured.cold_start_ms is not None:
        figures.append(f"Cold start: {measured.cold_start_ms:.2f} ms")
    if measured.peak_rss_bytes is not None:
        figures.append(f"Peak RSS: {measured.peak_rss_bytes / 2**20:.1f} MiB")
    return "\t".join([f"{REPORT_PREFIX}{request_id or '-'}", *figures, *kept])


def peak_rss_bytes(pid: int) -> int | None:
    """The peak resident set size of process `pid` (VmHWM), or None if /proc cannot tell."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            value, _, unit = line.split(":", 1)[1].strip().partition(" ")
            if unit.strip() == "kB" and value.isdigit():
                return int(value) * 1024
    return None


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
        self.cold_start_ms: float | None = None  # process start to first reply, once replied
        self._started_at = 0.0
        # One invocation at a time: the REPORT line the RIE prints for it, matched by RequestId.
        self._report_lock = threading.Lock()
        self._report_seen = threading.Event()
        self._armed = False
        self._request_id: str | None = None
        self._rie_report: str | None = None

    def start(self, timeout: float = 20.0) -> None:
        binary = rie_binary()
        for attempt in range(3):  # a free port can be taken between probe and bind: retry
            port, api_port = free_port(), free_port()
            self._started_at, self.cold_start_ms = time.perf_counter(), None
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
        """Stream the function's logs (and the RIE's START/END lines) with a prefix; the RIE's
        REPORT line goes to `invoke`, which logs the runner's own in its place."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            text = raw.decode(errors="replace").rstrip()
            if text.startswith(REPORT_PREFIX):
                self._take_report(text)
                continue
            if text.startswith(START_PREFIX):
                with self._report_lock:
                    if self._armed:
                        self._request_id = text.removeprefix(START_PREFIX).split()[0]
            self.log(f"[{self.name}] {text}")

    def _take_report(self, text: str) -> None:
        request_id = text.split("\t", 1)[0].removeprefix(REPORT_PREFIX).strip()
        with self._report_lock:
            # A REPORT for an invocation the runner is not timing (one that outlived its wait)
            # holds only made-up figures: it is dropped.
            if self._armed and request_id == self._request_id:
                self._rie_report = text
                self._report_seen.set()

    def _arm(self) -> None:
        with self._report_lock:
            self._armed, self._request_id, self._rie_report = True, None, None
            self._report_seen.clear()

    def _report(self, sent: float) -> None:
        """Log the runner's REPORT line for the invocation whose POST went out at `sent`."""
        replied = time.perf_counter()
        cold = None
        if self.cold_start_ms is None:
            cold = self.cold_start_ms = (replied - self._started_at) * 1000
        self._report_seen.wait(REPORT_WAIT)
        with self._report_lock:
            self._armed = False
            rie_line, request_id = self._rie_report, self._request_id
        peaks = [p for pid in self._runtime_pids() if (p := peak_rss_bytes(pid)) is not None]
        measured = Measured((replied - sent) * 1000, cold, max(peaks) if peaks else None)
        self.log(f"[{self.name}] {report_line(rie_line, measured, request_id)}")

    def _runtime_pids(self) -> list[int]:
        return _children(self.proc.pid) if self.proc is not None else []

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def invoke(self, event: Any, timeout: float | None = None) -> Any:
        """Invoke once and return the parsed response; FunctionError if the function failed.

        `timeout`: seconds to wait for the reply (default: the function's timeout, which the
        RIE enforces, plus a margin for a slow cold start).
        """
        if not self.alive:
            raise FunctionError(f"{self.name}: the function process is not running")
        request = urllib.request.Request(
            self.url + INVOKE_PATH, data=json.dumps(event).encode(), method="POST"
        )
        wait = timeout if timeout is not None else self.spec.timeout + 10
        self._arm()
        sent = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=wait) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            # e.g. 502 when the runtime fails to start (an import error): the RIE itself is fine
            # and starts the runtime again on the next invocation.
            with error:
                detail = error.read().decode(errors="replace")
            self._report(sent)
            try:
                payload = json.loads(detail)
            except ValueError:
                payload = None
            message = f"{self.name}: HTTP {error.code} from the RIE: {detail}"
            raise FunctionError(message, payload) from None
        except OSError as exc:
            with self._report_lock:
                self._armed = False
            self.stop()  # a hung or crashed environment is not reused
            raise FunctionError(f"{self.name}: invocation failed: {exc}") from exc
        self._report(sent)
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

    def invoke(self, event: Any, timeout: float | None = None) -> Any:
        process = self._acquire()
        try:
            return process.invoke(event, timeout)
        finally:
            self._release(process)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            processes, self._all, self._idle = list(self._all), [], []
            self._cond.notify_all()
        for process in processes:
            process.stop()
