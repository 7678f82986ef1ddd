"""The Docker-free local runner end to end: real HTTP on 127.0.0.1 to functions running under the
Lambda RIE. Uses a small echo function and template in a temporary folder, so it does not depend
on the project's handlers."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tools.local.api
from tools.local.rie import FunctionProcess
from tools.local.runner import LocalApi
from tools.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30  # seconds, for every request


# Tests of the developer tooling (tools/local), not of the product: `pytest -m "e2e and not
# tooling"` runs the product's own end-to-end tests alone.
pytestmark = [pytest.mark.e2e, pytest.mark.tooling]

HANDLER = """
import base64, json, os, time
import helper  # from the layer

def handler(event, context):
    path = event["path"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/slow":
        time.sleep(5)
    if path == "/alloc":  # touch every byte of `mib` MiB: the peak RSS must show it
        block = bytes([1]) * (event["mib"] * 2**20)
        return {"statusCode": 200, "body": str(len(block))}
    if path == "/binary":
        return {"statusCode": 201, "headers": {"Content-Type": "application/octet-stream"},
                "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
    reply = {
        "path": path, "method": event["httpMethod"], "resource": event["resource"],
        "body": event["body"], "isBase64Encoded": event["isBase64Encoded"],
        "query": event["queryStringParameters"],
        "multiQuery": event["multiValueQueryStringParameters"],
        "stage": event["requestContext"]["stage"],
        "apiKey": event["requestContext"]["identity"]["apiKey"],
        "sourceIp": event["requestContext"]["identity"]["sourceIp"],
        "greeting": os.environ["GREETING"], "layer": helper.VALUE,
        "function": context.function_name, "memory": context.memory_limit_in_mb,
        "pid": os.getpid(),
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {"X-Multi": ["a", "b"]}, "body": json.dumps(reply)}
"""

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Runtime: python3.12
    Timeout: 10
Resources:
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layer}
  Api:
    Type: AWS::Serverless::Api
    Properties: {StageName: test}
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Handler: app.handler
      MemorySize: 256
      Layers: [!Ref Layer]
      Environment:
        Variables:
          GREETING: !Ref Greeting
      Events:
        Post: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /echo, Method: post}}
        Get: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /echo, Method: get}}
        Secret:
          Type: Api
          Properties:
            RestApiId: !Ref Api
            Path: /secret
            Method: post
            Auth: {ApiKeyRequired: true}
        Boom: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /boom, Method: get}}
        Binary: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /binary, Method: get}}
  SlowFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Handler: app.handler
      Timeout: 1
      Layers: [!Ref Layer]
      Environment: {Variables: {GREETING: slow}}
      Events:
        Slow: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /slow, Method: get}}
"""
API_KEY = "test-key"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "fn").mkdir()
    (root / "fn" / "app.py").write_text(HANDLER)
    (root / "layer").mkdir()
    (root / "layer" / "helper.py").write_text("VALUE = 'from-layer'\n")
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "env.json").write_text(json.dumps({"EchoFunction": {"GREETING": "hi"}}))
    return root


@pytest.fixture(scope="module")
def api(project: Path, moto_endpoint: str) -> Iterator[LocalApi]:
    with LocalApi(
        project / "template.yaml",
        env_vars=project / "env.json",
        port=0,
        api_key=API_KEY,
        s3_endpoint=moto_endpoint,
        seed=None,
        concurrency=4,
        log=lambda line: None,
    ) as local:
        yield local


def request(
    api: LocalApi,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(api.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_route_gets_an_api_gateway_proxy_event(api: LocalApi) -> None:
    status, headers, body = request(api, "POST", "/echo?a=1&a=2&b=x", b'{"x": 1}')
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    reply: dict[str, Any] = json.loads(body)
    assert reply | {"pid": 0} == {
        "path": "/echo",
        "method": "POST",
        "resource": "/echo",
        "body": '{"x": 1}',
        "isBase64Encoded": False,
        "query": {"a": "2", "b": "x"},
        "multiQuery": {"a": ["1", "2"], "b": ["x"]},
        "stage": "test",
        "apiKey": None,
        "sourceIp": "127.0.0.1",
        "greeting": "hi",  # the env-vars file overrides the parameter's default
        "layer": "from-layer",
        "function": "EchoFunction",
        "memory": "256",
        "pid": 0,
    }
    assert reply["pid"] != os.getpid()  # the function runs in a process of its own


def test_multi_value_response_headers(api: LocalApi) -> None:
    req = urllib.request.Request(api.url + "/echo", method="GET")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as response:
        assert response.headers.get_all("X-Multi") == ["a", "b"]
        assert json.loads(response.read())["body"] is None


def test_unknown_path_is_404(api: LocalApi) -> None:
    status, _, body = request(api, "GET", "/nope")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"


def test_wrong_method_is_405(api: LocalApi) -> None:
    status, headers, body = request(api, "DELETE", "/echo")
    assert status == 405
    assert headers["Allow"] == "GET, POST"
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


def test_api_key_is_enforced(api: LocalApi) -> None:
    status, _, body = request(api, "POST", "/secret", b"{}")
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    status, _, body = request(api, "POST", "/secret", b"{}", {"x-api-key": "wrong"})
    assert status == 403
    status, _, body = request(api, "POST", "/secret", b"{}", {"x-api-key": API_KEY})
    assert status == 200
    assert json.loads(body)["apiKey"] == API_KEY


def test_binary_bodies_are_base64_both_ways(api: LocalApi) -> None:
    raw = bytes([0xFF, 0xFE, 0x00, 0x80])  # not UTF-8: arrives base64-encoded
    status, _, body = request(api, "POST", "/echo", raw)
    reply = json.loads(body)
    assert (status, reply["isBase64Encoded"]) == (200, True)
    assert base64.b64decode(reply["body"]) == raw
    status, headers, body = request(api, "GET", "/binary")  # isBase64Encoded reply: decoded
    assert (status, headers["Content-Type"], body) == (
        201,
        "application/octet-stream",
        bytes(range(256)),
    )


def test_function_error_is_502(api: LocalApi) -> None:
    status, _, body = request(api, "GET", "/boom")
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
    assert request(api, "GET", "/echo")[0] == 200  # the environment survives a handler error


def test_function_timeout_is_502(api: LocalApi) -> None:
    status, _, body = request(api, "GET", "/slow")  # sleeps 5 s, Timeout is 1 s
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


def test_body_over_10_mb_is_413(api: LocalApi) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        conn.putrequest("POST", "/echo")
        conn.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
        conn.endheaders()  # the body is never sent: the answer must not wait for it
        assert conn.getresponse().status == 413
    finally:
        conn.close()


def raw_exchange(api: LocalApi, data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send `data` on one keep-alive connection, half-close it, and read every response."""
    replies: list[tuple[int, dict[str, str], bytes]] = []
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the server closes the connection after the last reply
        with sock.makefile("rb") as stream:
            while status_line := stream.readline():
                headers: dict[str, str] = {}
                while (line := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = stream.read(int(headers.get("content-length", "0")))
                replies.append((int(status_line.split()[1]), headers, body))
    return replies


SMUGGLED = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "path", "status"), [("PUT", "/echo", 405), ("POST", "/nope", 404)]
)
def test_early_reply_consumes_the_body(api: LocalApi, method: str, path: str, status: int) -> None:
    """A 404/405 must read the body: unread, it would be parsed as the next request."""
    first = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(SMUGGLED)}\r\n\r\n"
    then = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    replies = raw_exchange(api, first.encode() + SMUGGLED + then)
    assert [status for status, _, _ in replies] == [status, 200]
    assert json.loads(replies[1][2])["method"] == "GET"


@pytest.mark.parametrize(
    "key", [b"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", b"caf\xe9", "test-k\u00e9y".encode()]
)
def test_non_ascii_api_key_is_403(api: LocalApi, key: bytes) -> None:
    head = b"POST /secret HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nx-api-key: "
    then = f"POST /secret HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nx-api-key: {API_KEY}\r\n"
    replies = raw_exchange(api, head + key + b"\r\n\r\n{}" + then.encode() + b"\r\n{}")
    assert [status for status, _, _ in replies] == [403, 200]  # the connection stays usable
    assert json.loads(replies[0][2]) == {"message": "Forbidden"}


def test_non_ascii_expected_key(api: LocalApi, monkeypatch: pytest.MonkeyPatch) -> None:
    assert api.server is not None
    monkeypatch.setattr(api.server, "api_key", "ключ-key")
    status, _, body = request(api, "POST", "/secret", b"{}", {"x-api-key": API_KEY})
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    raw = b"POST /secret HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nx-api-key: "
    replies = raw_exchange(api, raw + "ключ-key".encode() + b"\r\n\r\n{}")
    assert [status for status, _, _ in replies] == [200]  # the same UTF-8 bytes match


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        (b"Content-Length: abc\r\n", 400, "bad_request"),
        (b"Content-Length: +2\r\n", 400, "bad_request"),
        (b"Content-Length: 2\r\nContent-Length: 3\r\n", 400, "bad_request"),
        (b"Transfer-Encoding: chunked\r\n", 411, "length_required"),
    ],
)
def test_framing_errors_close_the_connection(
    api: LocalApi, headers: bytes, status: int, code: str
) -> None:
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n{}\r\n" + SMUGGLED
    replies = raw_exchange(api, data)
    assert len(replies) == 1  # nothing after it is taken as a request
    got, reply_headers, body = replies[0]
    assert (got, reply_headers["connection"]) == (status, "close")
    error = json.loads(body)["error"]
    assert error == {"code": code, "message": error["message"], "details": []}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/nope", 404, "not_found"), ("DELETE", "/echo", 405, "method_not_allowed")],
)
def test_own_errors_have_the_project_shape(
    api: LocalApi, method: str, path: str, status: int, code: str
) -> None:
    got, _, body = request(api, method, path)
    error = json.loads(body)["error"]
    assert (got, error) == (status, {"code": code, "message": error["message"], "details": []})
    assert isinstance(error["message"], str)
    assert error["message"]


def test_unexpected_integration_error_is_502(
    api: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(function_id: str, event: dict[str, Any]) -> Any:
        raise KeyError(function_id)  # not a FunctionError

    assert api.server is not None
    monkeypatch.setattr(api.server, "invoke", broken)
    status, _, body = request(api, "GET", "/echo")
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


def test_bug_in_the_server_is_500(api: LocalApi, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(tools.local.api, "build_event", broken)
    replies = raw_exchange(api, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    assert len(replies) == 1
    status, headers, body = replies[0]
    error = json.loads(body)["error"]
    assert (status, headers["connection"], error["code"], error["details"]) == (
        500,
        "close",
        "internal_error",
        [],
    )
    assert "ZeroDivisionError" in error["message"]
    monkeypatch.undo()
    assert request(api, "GET", "/echo")[0] == 200  # the server still serves


def test_bad_response_header_is_502_not_split(
    api: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    def injecting(function_id: str, event: dict[str, Any]) -> Any:
        return {"statusCode": 200, "headers": {"X-A": "1\r\nX-Injected: 1"}, "body": "{}"}

    assert api.server is not None
    monkeypatch.setattr(api.server, "invoke", injecting)
    status, headers, body = request(api, "GET", "/echo")
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
    assert "X-Injected" not in headers


def test_concurrent_clients_all_get_answers(api: LocalApi) -> None:
    """8 clients x 10 requests; the RIE takes one invocation at a time, the pool scales out."""
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            for i in range(10):
                status, _, body = request(api, "POST", "/echo", f"{n}-{i}".encode())
                results.append((status, json.loads(body)["pid"]))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert len(results) == 80
    assert {status for status, _ in results} == {200}
    assert 1 <= len({pid for _, pid in results}) <= 4  # never more environments than the pool


def run_cli(project: Path, moto_endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint}  # use it, start no S3 of its own
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.local",
            *args,
            "--template",
            str(project / "template.yaml"),
        ],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invoke_cli_runs_a_cold_start(project: Path, moto_endpoint: str) -> None:
    event: dict[str, Any] = {"path": "/echo", "httpMethod": "POST", "resource": "/echo"}
    event["body"] = "hey"
    event |= {"isBase64Encoded": False, "queryStringParameters": None}
    event |= {"multiValueQueryStringParameters": None}
    event["requestContext"] = {"stage": "test", "identity": {"apiKey": None, "sourceIp": "1.2.3.4"}}
    (project / "event.json").write_text(json.dumps(event))
    result = run_cli(project, moto_endpoint, "invoke", "EchoFunction", str(project / "event.json"))
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200
    reply = json.loads(response["body"])
    assert (reply["body"], reply["greeting"], reply["layer"]) == ("hey", "hello", "from-layer")
    assert "[EchoFunction] START RequestId" in result.stderr  # the function's logs are shown
    assert "cold start" in result.stderr
    report = next(line for line in result.stderr.splitlines() if " REPORT RequestId: " in line)
    assert "\tCold start: " in report
    assert "Max Memory Used" not in report


def test_invoke_cli_reports_a_function_error(project: Path, moto_endpoint: str) -> None:
    (project / "boom.json").write_text(json.dumps({"path": "/boom"}))
    result = run_cli(project, moto_endpoint, "invoke", "EchoFunction", str(project / "boom.json"))
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "RuntimeError"


def report_fields(line: str) -> dict[str, float]:
    """The numbers of a REPORT line: {"Round trip": ms, "Cold start": ms, "Peak RSS": MiB}."""
    _, *rest = line.split("\t")
    return {name: float(value.split()[0]) for name, value in (f.split(": ", 1) for f in rest)}


def test_report_line_holds_what_the_runner_measured(project: Path) -> None:
    """Not the RIE's made-up figures (Max Memory Used = the limit, Init Duration ~0.02 ms)."""
    spec = load_template(project / "template.yaml").functions["EchoFunction"]
    lines: list[str] = []
    started = time.perf_counter()
    with FunctionProcess(spec, log=lines.append) as process:
        process.invoke({"path": "/alloc", "mib": 0})
        first_ms = (time.perf_counter() - started) * 1000
        process.invoke({"path": "/alloc", "mib": 300})  # more than the 256 MB MemorySize
    reports = [line for line in lines if line.startswith("[EchoFunction] REPORT RequestId: ")]
    assert len(reports) == 2, lines
    for made_up in ("Init Duration", "Billed Duration", "Max Memory Used", "Memory Size"):
        assert not any(made_up in line for line in reports)
    cold, warm = report_fields(reports[0]), report_fields(reports[1])
    assert set(cold) == {"Round trip", "Cold start", "Peak RSS"}
    assert set(warm) == {"Round trip", "Peak RSS"}  # a warm invocation has no cold start
    # process start -> first reply: the round trip and more, and what this test saw at most
    assert cold["Round trip"] <= cold["Cold start"] <= first_ms
    assert cold["Peak RSS"] < 200  # a small handler, whatever the 256 MB limit says
    assert warm["Peak RSS"] >= cold["Peak RSS"] + 290  # the 300 MiB it touched, measured
