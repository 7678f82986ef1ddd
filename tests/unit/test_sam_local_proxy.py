"""The Docker-API proxy between SAM CLI and podman (tools/sam_local/proxy.py), without podman.

The container-create bodies come from SAM 1.170's own Container.create through docker-py, so a
SAM upgrade that changes how it asks for the emulator's port fails here, not in CI's sam-local run.
"""

from __future__ import annotations

import importlib.metadata
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tools.sam_local.proxy import (
    ATTACH_LOGS_PATH,
    RIE,
    SAM_CLI_VERSION,
    AttachFraming,
    DockerApiProxy,
    ProxyError,
    prepare_request,
    rewrite_create,
    split_head,
)

pytestmark = [pytest.mark.unit, pytest.mark.tooling]  # tests of tools/, not the product

SAM_ENTRYPOINT = [RIE, "--log-level", "error"]


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse Docker's multiplexed stream strictly, as docker-py's demux does."""
    out = []
    while data:
        assert data[0] in (0, 1, 2) and data[1:4] == b"\0\0\0", f"bad frame header {data[:8]!r}"
        length = int.from_bytes(data[4:8], "big")
        assert len(data) >= 8 + length, "truncated frame"
        out.append((data[0], data[8 : 8 + length]))
        data = data[8 + length :]
    return out


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def sam_create_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The JSON body SAM 1.170 sends for a Lambda container, captured from docker-py."""
    from samcli.local.docker.container import Container, ContainerContext

    client = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    captured: dict[str, Any] = {}

    def create_from_config(config: dict[str, Any], *_: Any) -> Any:
        captured.update(config)
        return {"Id": "c0ffee"}

    client.api.create_container_from_config = create_from_config
    fake = type("FakeContainer", (), {"id": "c0ffee"})()
    monkeypatch.setattr(docker.models.containers.ContainerCollection, "get", lambda *_: fake)
    container = Container(
        "samcli/lambda-python:3.12-x86_64-abc",
        ["predict_handler.lambda_handler"],
        "/var/task",
        str(tmp_path),
        memory_limit_mb=1024,
        entrypoint=list(SAM_ENTRYPOINT),
        env_vars={"MODEL_BUCKET": "local-models", "AWS_REGION": "us-east-1"},
        docker_client=client,
        container_host="127.0.0.1",
        container_host_interface="127.0.0.1",
    )
    container.create(ContainerContext.INVOKE)
    captured["_sam_port"] = container.rapid_port_host
    return captured


def test_pinned_sam_version_is_the_installed_one() -> None:
    assert importlib.metadata.version("aws-sam-cli") == SAM_CLI_VERSION, (
        "SAM CLI changed: check tools/sam_local/proxy.py's rewrite against it, then update the pin"
    )


def test_sam_create_is_rewritten_to_host_network_on_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = sam_create_body(tmp_path, monkeypatch)
    sam_port = body.pop("_sam_port")
    binding = {"HostIp": "127.0.0.1", "HostPort": str(sam_port)}
    assert body["HostConfig"]["PortBindings"] == {"8080/tcp": [binding]}

    out = rewrite_create(
        body, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, labels={"run": "x"},
        free_port=lambda: 45678,
    )  # fmt: skip

    assert out["HostConfig"]["NetworkMode"] == "host"
    assert "PortBindings" not in out["HostConfig"] and "ExposedPorts" not in out
    assert out["Entrypoint"] == [
        *SAM_ENTRYPOINT,
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{sam_port}",
        "--runtime-api-address",
        "127.0.0.1:45678",
    ]
    assert out["Cmd"] == ["predict_handler.lambda_handler"]  # the handler stays the RIE's argument
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:5000" in out["Env"]
    assert "MODEL_BUCKET=local-models" in out["Env"]
    assert out["Labels"]["run"] == "x"
    assert out["HostConfig"]["Memory"] == 1024 * 1024 * 1024  # everything else untouched


def test_declared_variables_win_over_injected_ones() -> None:
    body = {"Env": ["AWS_ENDPOINT_URL=http://declared"], "Labels": {"keep": "1"}}
    out = rewrite_create(body, env={"AWS_ENDPOINT_URL": "http://injected"}, labels={"run": "x"})
    assert out["Env"] == ["AWS_ENDPOINT_URL=http://declared"]
    assert out["Labels"] == {"keep": "1", "run": "x"}


def test_other_containers_only_get_host_networking() -> None:
    body = {
        "Entrypoint": ["/bin/sh"],
        "ExposedPorts": {"9229/tcp": {}},
        "HostConfig": {"PortBindings": {"9229/tcp": [{"HostPort": "9229"}]}},
    }
    out = rewrite_create(body, free_port=lambda: pytest.fail("no port needed"))
    assert out["Entrypoint"] == ["/bin/sh"]
    assert out["HostConfig"] == {"NetworkMode": "host"}
    assert "ExposedPorts" not in out


def test_emulator_without_a_bound_port_is_refused() -> None:
    with pytest.raises(ProxyError, match="8080/tcp"):
        rewrite_create({"Entrypoint": list(SAM_ENTRYPOINT), "HostConfig": {}})


def _head(request_line: str, *headers: str) -> bytes:
    return "\r\n".join([request_line, *headers]).encode()


def test_prepare_request_rewrites_a_versioned_create() -> None:
    body = json.dumps({"Entrypoint": ["/bin/true"], "HostConfig": {}}).encode()
    head = _head(
        "POST /v1.41/containers/create?name=x HTTP/1.1",
        "Host: localhost",
        "Connection: keep-alive",
        f"Content-Length: {len(body)}",
    )
    sent = prepare_request(head, lambda n: body[:n], labels={"run": "x"})
    raw_head, _, raw_body = sent.partition(b"\r\n\r\n")
    _, target, _, headers = split_head(raw_head)
    assert target == "/v1.41/containers/create?name=x"
    assert dict(headers)["Connection"] == "close"
    assert int(dict(headers)["Content-Length"]) == len(raw_body)
    assert json.loads(raw_body)["HostConfig"]["NetworkMode"] == "host"


def test_prepare_request_leaves_other_requests_and_upgrades_alone() -> None:
    ping = prepare_request(_head("GET /_ping HTTP/1.1", "Host: x"), lambda n: b"")
    assert ping == b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    attach = _head(
        "POST /containers/ab/attach?logs=1 HTTP/1.1", "Connection: Upgrade", "Upgrade: tcp"
    )
    assert prepare_request(attach, lambda n: b"") == attach + b"\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        _head("POST /containers/create HTTP/1.1", "Transfer-Encoding: chunked"),
        _head("POST /containers/create HTTP/1.1", "Content-Length: 0"),
        _head("GARBAGE"),
        _head("GET / HTTP/1.1", "no colon here"),
    ],
)
def test_requests_the_proxy_cannot_handle_are_refused(head: bytes) -> None:
    with pytest.raises(ProxyError):
        prepare_request(head, lambda n: b"{}")


@pytest.mark.parametrize(
    ("target", "matches"),
    [
        ("/v1.41/containers/ab12/attach?logs=1&stdout=1&stderr=1&stream=1", True),
        ("/containers/ab12/attach?stream=1&logs=true", True),
        ("/v1.41/containers/ab12/attach?logs=0&stdout=1", False),
        ("/v1.41/containers/ab12/logs?logs=1", False),
    ],
)
def test_attach_with_logs_is_recognised(target: str, matches: bool) -> None:
    assert bool(ATTACH_LOGS_PATH.match(target)) is matches


PODMAN_REPLAY = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
    + frame(1, b"START")
    + b"\n"  # podman 4.3 sends the replayed line's newline outside its frame
    + frame(2, b"log line")
    + b"\n"
    + frame(1, b"out1\nout2\n")
    + frame(1, b"REPORT\n")
)


@pytest.mark.parametrize("piece", [1, 3, 7, 4096])
def test_attach_framing_is_repaired_whatever_the_chunking(piece: int) -> None:
    fix = AttachFraming()
    out = b"".join(
        fix.feed(PODMAN_REPLAY[i : i + piece]) for i in range(0, len(PODMAN_REPLAY), piece)
    )
    out += fix.flush()
    head, _, stream = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    parsed = frames(stream)
    assert b"".join(p for s, p in parsed if s == 1) == b"START\nout1\nout2\nREPORT\n"
    assert b"".join(p for s, p in parsed if s == 2) == b"log line\n"


def test_the_unrepaired_stream_is_what_breaks_docker_py() -> None:
    stream = PODMAN_REPLAY.partition(b"\r\n\r\n")[2]
    with pytest.raises(AssertionError, match="bad frame header"):
        frames(stream)


def test_unframed_answers_pass_unchanged() -> None:
    error = b'HTTP/1.1 404 Not Found\r\nContent-Length: 20\r\n\r\n{"message":"no such"}'
    fix = AttachFraming()
    assert fix.feed(error[:30]) + fix.feed(error[30:]) + fix.flush() == error


# ---------------------------------------------------------------- over real Unix sockets


class FakePodman(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers every request, records it, and closes like podman does on Connection: close."""

    daemon_threads = True

    def __init__(self, path: Path, reply: bytes):
        self.reply = reply
        self.requests: list[bytes] = []
        super().__init__(str(path), _FakeHandler)


class _FakeHandler(socketserver.BaseRequestHandler):
    server: FakePodman

    def handle(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.request.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(dict(split_head(head)[3]).get("Content-Length", "0"))
        while len(body) < length:
            body += self.request.recv(65536)
        self.server.requests.append(head + b"\r\n\r\n" + body)
        self.request.sendall(self.server.reply)


@pytest.fixture
def sockets(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    # A short folder: Unix socket paths are limited to 107 bytes.
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="proxy-test-"))
    yield folder / "docker.sock", folder / "podman.sock"
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def _serve(server: socketserver.BaseServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def _exchange(path: Path, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(str(path))
        client.sendall(request)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        return answer


def test_create_through_the_proxy_reaches_podman_rewritten(sockets: tuple[Path, Path]) -> None:
    listen, upstream = sockets
    reply = b'HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 11\r\n\r\n{"Id":"ab"}'
    with FakePodman(upstream, reply) as podman, DockerApiProxy(
        listen, upstream, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, labels={"run": "t"}
    ) as proxy:  # fmt: skip
        _serve(podman)
        _serve(proxy)
        binding = {"HostIp": "127.0.0.1", "HostPort": "5123"}
        body = json.dumps(
            {
                "Entrypoint": list(SAM_ENTRYPOINT),
                "HostConfig": {"PortBindings": {"8080/tcp": [binding]}},
            }
        ).encode()
        request = (
            b"POST /v1.41/containers/create HTTP/1.1\r\nHost: localhost\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert _exchange(listen, request) == reply
        podman.shutdown()
        proxy.shutdown()
    sent = json.loads(podman.requests[0].partition(b"\r\n\r\n")[2])
    assert sent["HostConfig"] == {"NetworkMode": "host"}
    assert sent["Entrypoint"][3:5] == ["--runtime-interface-emulator-address", "127.0.0.1:5123"]
    assert sent["Env"] == ["AWS_ENDPOINT_URL=http://127.0.0.1:1"]


def test_attach_through_the_proxy_is_reframed(sockets: tuple[Path, Path]) -> None:
    listen, upstream = sockets
    with FakePodman(upstream, PODMAN_REPLAY) as podman, DockerApiProxy(listen, upstream) as proxy:
        _serve(podman)
        _serve(proxy)
        answer = _exchange(
            listen,
            b"POST /v1.41/containers/ab/attach?logs=1&stdout=1&stderr=1&stream=1 HTTP/1.1\r\n"
            b"Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
        )
        podman.shutdown()
        proxy.shutdown()
    parsed = frames(answer.partition(b"\r\n\r\n")[2])
    assert b"".join(p for _, p in parsed) == b"START\nlog line\nout1\nout2\nREPORT\n"


def test_podman_down_is_a_clear_502(sockets: tuple[Path, Path]) -> None:
    listen, upstream = sockets
    with DockerApiProxy(listen, upstream) as proxy:
        _serve(proxy)
        answer = _exchange(listen, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        proxy.shutdown()
    assert answer.startswith(b"HTTP/1.1 502")
    assert b"podman API at" in answer
