"""A small local interpreter for statemachines/batch_transform.asl.json (`make batch`, tests).

In production the definition runs on AWS Step Functions: its Distributed Map reads the input
from S3, batches items, runs up to MaxConcurrency child executions of BatchPredictFunction, and
writes results with ResultWriter. Neither moto nor Step Functions Local runs a Distributed Map,
so this module interprets exactly the states and fields the definition uses, from the same
file: Task (a Lambda ARN, Parameters, ResultPath, Retry, Catch), Choice (StringEquals), Fail,
and Map in DISTRIBUTED mode (ItemReader for CSV with a header row or JSON Lines from S3,
ItemSelector, ItemBatcher with MaxItemsPerBatch / MaxInputBytesPerBatch and BatchInput,
MaxConcurrency as a bounded thread pool, ToleratedFailurePercentagePath, ResultWriter files
shaped as Step Functions writes them: manifest.json, SUCCEEDED_0.json, FAILED_0.json). Paths
are plain dotted JSONPath ($.a.b, $$.Execution.Name, $$.Map.Item.Index). Anything else in a
definition is refused, not guessed.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "statemachines" / "batch_transform.asl.json"
# Function "ARNs" the definition's substitutions become locally: the template's logical ids.
SUBSTITUTIONS = {"BatchPredictFunctionArn": "BatchPredictFunction"}

Invoke = Callable[[str, Any], Any]  # (function logical id, payload) -> result; raises TaskError


class TaskError(Exception):
    """A state failed with a Step Functions error name (the function's exception type, or a
    States.* error) and a cause."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


@dataclass
class Execution:
    name: str
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    started_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")
    )
    map_batches: int = 0


def load_definition(path: Path = DEFINITION, substitutions: dict[str, str] | None = None) -> Any:
    text = path.read_text()
    for name, value in (substitutions or SUBSTITUTIONS).items():
        text = text.replace("${" + name + "}", value)
    return json.loads(text)


def _get(path: str, data: Any, context: dict[str, Any]) -> Any:
    root, rest = (context, path[2:]) if path.startswith("$$") else (data, path[1:])
    if not path.startswith("$"):
        raise ValueError(f"unsupported path {path!r}")
    value = root
    for part in [p for p in rest.split(".") if p]:
        if not isinstance(value, dict) or part not in value:
            raise TaskError("States.Runtime", f"the path {path!r} matches nothing")
        value = value[part]
    return value


def _fill(template: Any, data: Any, context: dict[str, Any]) -> Any:
    """Parameters / ItemSelector / BatchInput: keys ending in .$ take a path's value."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _get(value, data, context)
            else:
                out[key] = _fill(value, data, context)
        return out
    if isinstance(template, list):
        return [_fill(v, data, context) for v in template]
    return template


def _put(data: Any, path: str | None, result: Any) -> Any:
    """ResultPath: null keeps the input, "$" replaces it, "$.a.b" sets a field of a copy."""
    if path is None:
        return data
    if path == "$":
        return result
    out = json.loads(json.dumps(data))
    node = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = result
    return out


def _matches(error: str, names: list[str]) -> bool:
    return (
        "States.ALL" in names
        or error in names
        or ("States.TaskFailed" in names and not error.startswith("States."))
    )


class StateMachine:
    """Runs a definition: `invoke` calls a function by logical id; `s3` reads the input and
    takes the results; `sleep` waits between retries (tests pass a no-op)."""

    def __init__(
        self,
        definition: Any,
        invoke: Invoke,
        s3: S3Client,
        *,
        max_concurrency: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.definition = definition
        self.invoke = invoke
        self.s3 = s3
        self.max_concurrency = max_concurrency
        self.sleep = sleep
        self.on_batch = on_batch  # (batches done, batches in all): progress

    def run(self, data: Any, name: str | None = None) -> Execution:
        execution = Execution(name or uuid.uuid4().hex)
        context = {"Execution": {"Name": execution.name, "StartTime": execution.started_at}}
        try:
            execution.output = self._states(self.definition, data, context, execution)
            execution.status = "SUCCEEDED"
        except TaskError as exc:
            execution.status, execution.error, execution.cause = "FAILED", exc.error, exc.cause
        return execution

    def _states(
        self, machine: Any, data: Any, context: dict[str, Any], execution: Execution
    ) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            kind = state["Type"]
            if kind == "Fail":
                raise TaskError(state.get("Error", "States.Fail"), state.get("Cause", ""))
            if kind == "Choice":
                name = self._choose(state, data, context)
                continue
            try:
                if kind == "Task":
                    result = self._task(state, data, context)
                elif kind == "Map":
                    result = self._map(state, data, context, execution)
                else:
                    raise ValueError(f"state type {kind} is not interpreted locally")
                data = _put(data, state.get("ResultPath", "$"), result)
            except TaskError as exc:
                handler = next(
                    (c for c in state.get("Catch", []) if _matches(exc.error, c["ErrorEquals"])),
                    None,
                )
                if handler is None:
                    raise
                error = {"Error": exc.error, "Cause": exc.cause}
                data = _put(data, handler.get("ResultPath", "$"), error)
                name = handler["Next"]
                continue
            if state.get("End"):
                return data
            name = state["Next"]

    def _choose(self, state: Any, data: Any, context: dict[str, Any]) -> str:
        for rule in state["Choices"]:
            if set(rule) != {"Variable", "StringEquals", "Next"}:
                raise ValueError(f"choice rule {rule} is not interpreted locally")
            if _get(rule["Variable"], data, context) == rule["StringEquals"]:
                return str(rule["Next"])
        return str(state["Default"])

    def _task(self, state: Any, data: Any, context: dict[str, Any]) -> Any:
        payload = _fill(state["Parameters"], data, context) if "Parameters" in state else data
        attempts: dict[int, int] = {}
        while True:
            try:
                return self.invoke(state["Resource"], payload)
            except TaskError as exc:
                for i, rule in enumerate(state.get("Retry", [])):
                    if _matches(exc.error, rule["ErrorEquals"]):
                        n = attempts.get(i, 0)
                        if n >= rule.get("MaxAttempts", 3):
                            raise
                        attempts[i] = n + 1
                        delay = rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** n
                        self.sleep(min(delay, rule.get("MaxDelaySeconds", delay)))
                        break
                else:
                    raise

    # --- the Distributed Map -----------------------------------------------------------------

    def _items(self, state: Any, data: Any, context: dict[str, Any]) -> Iterator[Any]:
        reader = state["ItemReader"]
        where = _fill(reader["Parameters"], data, context)
        body = self.s3.get_object(Bucket=where["Bucket"], Key=where["Key"])["Body"].read()
        config = reader["ReaderConfig"]
        text = body.decode("utf-8-sig")
        if config["InputType"] == "CSV" and config.get("CSVHeaderLocation") == "FIRST_ROW":
            values: Iterator[Any] = iter(csv.DictReader(io.StringIO(text, newline="")))
        elif config["InputType"] == "JSONL":
            values = (json.loads(line) for line in text.splitlines() if line.strip())
        else:
            raise ValueError(f"ItemReader {config} is not interpreted locally")
        for index, value in enumerate(values):
            item_context = {**context, "Map": {"Item": {"Index": index, "Value": value}}}
            yield _fill(state["ItemSelector"], data, item_context)

    def _batches(self, state: Any, data: Any, context: dict[str, Any]) -> list[list[Any]]:
        batcher = state["ItemBatcher"]
        most = batcher.get("MaxItemsPerBatch", 10**9)
        limit = batcher.get("MaxInputBytesPerBatch", 256 * 1024)
        batches: list[list[Any]] = [[]]
        size = 0
        for item in self._items(state, data, context):
            item_bytes = len(json.dumps(item, separators=(",", ":")).encode())
            if batches[-1] and (len(batches[-1]) >= most or size + item_bytes > limit):
                batches.append([])
                size = 0
            batches[-1].append(item)
            size += item_bytes
        return [b for b in batches if b]

    def _map(self, state: Any, data: Any, context: dict[str, Any], execution: Execution) -> Any:
        if state["ItemProcessor"]["ProcessorConfig"]["Mode"] != "DISTRIBUTED":
            raise ValueError("only a DISTRIBUTED map is interpreted locally")
        batches = self._batches(state, data, context)
        batch_input = _fill(state["ItemBatcher"].get("BatchInput", {}), data, context)
        workers = min(state.get("MaxConcurrency") or 1000, self.max_concurrency or 1000)
        processor = state["ItemProcessor"]
        done = 0

        def child(items: list[Any]) -> dict[str, Any]:
            child_input = {"Items": items, "BatchInput": batch_input}
            record: dict[str, Any] = {"Input": json.dumps(child_input), "Name": uuid.uuid4().hex}
            child_run = Execution(record["Name"])
            try:
                output = self._states(processor, child_input, context, child_run)
                record.update(Status="SUCCEEDED", Output=json.dumps(output))
            except TaskError as exc:
                record.update(Status="FAILED", Error=exc.error, Cause=exc.cause)
            return record

        records = []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for record in pool.map(child, batches):
                records.append(record)
                done += 1
                if self.on_batch:
                    self.on_batch(done, len(batches))
        execution.map_batches += len(batches)
        failed = [r for r in records if r["Status"] != "SUCCEEDED"]
        output = self._write_results(state, data, context, records)
        tolerated = state.get("ToleratedFailurePercentage", 0)
        if "ToleratedFailurePercentagePath" in state:
            tolerated = _get(state["ToleratedFailurePercentagePath"], data, context)
        if batches and 100.0 * len(failed) / len(batches) > float(tolerated):
            raise TaskError(
                "States.ExceedToleratedFailureThreshold",
                f"{len(failed)} of {len(batches)} batches failed (tolerated: {tolerated}%)",
            )
        return output

    def _write_results(
        self, state: Any, data: Any, context: dict[str, Any], records: list[dict[str, Any]]
    ) -> dict[str, Any]:
        where = _fill(state["ResultWriter"]["Parameters"], data, context)
        run = uuid.uuid4().hex
        base = f"{where['Prefix'].rstrip('/')}/{run}/"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status in ("SUCCEEDED", "FAILED"):
            chosen = [r for r in records if (r["Status"] == "SUCCEEDED") == (status == "SUCCEEDED")]
            if chosen:
                key = f"{base}{status}_0.json"
                body = json.dumps(chosen).encode()
                self.s3.put_object(Bucket=where["Bucket"], Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {
            "DestinationBucket": where["Bucket"],
            "MapRunArn": f"arn:aws:states:local:000000000000:mapRun:{run}",
            "ResultFiles": files,
        }
        key = base + "manifest.json"
        self.s3.put_object(Bucket=where["Bucket"], Key=key, Body=json.dumps(manifest).encode())
        return {
            "MapRunArn": manifest["MapRunArn"],
            "ResultWriterDetails": {"Bucket": where["Bucket"], "Key": key},
        }


def in_process(handlers: dict[str, Callable[[Any], Any]]) -> Invoke:
    """An Invoke that calls each function's handler in this process; an exception becomes the
    error Step Functions would see (its type's name, and its message as the cause)."""

    def invoke(function: str, payload: Any) -> Any:
        try:
            return json.loads(json.dumps(handlers[function](payload), default=str))
        except TaskError:
            raise
        except Exception as exc:
            raise TaskError(type(exc).__name__, str(exc)) from exc

    return invoke


class LocalStepFunctions:
    """The few Step Functions client calls `python -m training batch` makes (start_execution,
    describe_execution, list_map_runs, describe_map_run), answered by this interpreter running
    each execution in a thread: the CLI is tested against it, not against AWS."""

    def __init__(self, machine: Callable[[], StateMachine]) -> None:
        self.machine = machine
        self.runs: dict[str, dict[str, Any]] = {}

    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> dict[str, Any]:  # noqa: N803
        arn = stateMachineArn.replace(":stateMachine:", ":execution:", 1) + ":" + name
        entry: dict[str, Any] = {"status": "RUNNING", "done": 0, "total": 0, "failed": 0}
        machine = self.machine()

        def progress(done: int, total: int) -> None:
            entry.update(done=done, total=total)

        machine.on_batch = progress

        def run() -> None:
            execution = machine.run(json.loads(input), name=name)
            entry["status"] = execution.status

        entry["thread"] = threading.Thread(target=run, daemon=True)
        self.runs[arn] = entry
        entry["thread"].start()
        return {"executionArn": arn, "startDate": datetime.now(UTC)}

    def describe_execution(self, *, executionArn: str) -> dict[str, Any]:  # noqa: N803
        return {"executionArn": executionArn, "status": self.runs[executionArn]["status"]}

    def list_map_runs(self, *, executionArn: str) -> dict[str, Any]:  # noqa: N803
        entry = self.runs[executionArn]
        return {"mapRuns": [{"mapRunArn": executionArn + ":map"}] if entry["total"] else []}

    def describe_map_run(self, *, mapRunArn: str) -> dict[str, Any]:  # noqa: N803
        entry = self.runs[mapRunArn.removesuffix(":map")]
        counts = {"succeeded": entry["done"], "failed": 0, "total": entry["total"]}
        return {"mapRunArn": mapRunArn, "executionCounts": counts}


def through_runner(api: Any) -> Invoke:
    """An Invoke through the local runner's pools of RIE function processes (LocalApi.invoke):
    a function's exception comes back as its errorType, as Step Functions reports it."""
    from tools.local.rie import FunctionError

    def invoke(function: str, payload: Any) -> Any:
        try:
            return api.invoke(function, payload)
        except FunctionError as exc:
            body = exc.payload if isinstance(exc.payload, dict) else {}
            error = str(body.get("errorType") or "States.TaskFailed")
            raise TaskError(error, str(body.get("errorMessage") or exc)) from exc

    return invoke


def main(argv: list[str] | None = None) -> int:
    """`make batch INPUT=file.csv`: a local S3 with the default model live, the file uploaded
    under batch/in/, the job run by this interpreter against the template's BatchPredictFunction
    in RIE processes (MaxConcurrency bounded by --concurrency)."""
    import argparse

    import boto3

    from tools.local.runner import LocalApi

    parser = argparse.ArgumentParser(prog="python -m tools.local.statemachine")
    parser.add_argument("input", type=Path, help="a CSV (header row) or JSON Lines file")
    parser.add_argument("--job", default=None, help="job id (default: from the time)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    args = parser.parse_args(argv)
    job = args.job or datetime.now(UTC).strftime("job-%Y%m%dT%H%M%SZ")
    with LocalApi(
        args.template,
        env_vars=ROOT / "events" / "env.json",
        port=0,
        concurrency=args.concurrency,
    ) as api:
        s3 = boto3.client("s3", endpoint_url=api.endpoint)
        key = f"batch/in/{args.input.name}"
        s3.upload_file(str(args.input), api.bucket, key)

        def progress(done: int, total: int) -> None:
            print(f"\r[batch] {done:,}/{total:,} batches", end="", flush=True)

        started = time.perf_counter()
        runner = StateMachine(
            load_definition(),
            through_runner(api),
            s3,
            max_concurrency=args.concurrency,
            on_batch=progress,
        )
        run = runner.run({"key": key}, name=job)
        print()
        name = "_SUCCESS.json" if run.status == "SUCCEEDED" else "_FAILED.json"
        record = s3.get_object(Bucket=api.bucket, Key=f"batch/{job}/{name}")["Body"].read()
        print(record.decode())
        print(f"[batch] {run.status} in {time.perf_counter() - started:.1f} s")
    return 0 if run.status == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
