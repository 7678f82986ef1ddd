"""A Docker-API proxy on a Unix socket that puts SAM CLI's Lambda containers on the host network.

Pinned to SAM CLI 1.170.0 talking to podman 4.3.1; re-check the rewrite before upgrading either.

Why it exists: podman 4.3's Docker-compatible API ignores `netns = "host"` from containers.conf
(fixed in podman 4.4) and SAM 1.170's `--docker-network host` does not ask for host mode, so
every container would get a bridge network (10.88.x) and a published port on it. Host
networking is what lets the function reach the moto server on 127.0.0.1 and keeps every socket on
loopback. On `POST /containers/create` the proxy

* sets `HostConfig.NetworkMode = "host"` and drops `PortBindings` / `ExposedPorts`,
* tells SAM's Runtime Interface Emulator (entrypoint `/var/rapid/aws-lambda-rie`) to accept
  invocations on 127.0.0.1 at the host port SAM chose for container port 8080 (SAM connects
  there; the emulator's own default is 0.0.0.0:8080) and to serve the Runtime API on a free
  loopback port (a fixed default would be shared by every container on the host network),
* adds environment variables the function lacks (AWS_ENDPOINT_URL: SAM passes only the variables
  the template declares) and labels, so a driver can remove what a run created.

On `POST /containers/{id}/attach?logs=1` (how SAM reads the function's output) it repairs
podman 4.3's framing: the replayed log lines come with their newline outside the frame, and
docker-py then stops with "10 is not a valid stream", losing the rest of the function's log.

Everything else is relayed byte for byte. Each client connection carries one request: the proxy
asks podman to close after answering, which keeps the relay a plain two-way copy, also for
attach's hijacked stream.

    python -m tools.sam_local.proxy --listen /run/x/docker.sock --upstream /run/x/podman.sock
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import selectors
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tools.local.loopback import free_port

SAM_CLI_VERSION = "1.170.0"
RIE = "/var/rapid/aws-lambda-rie"
RIE_PORT = "8080/tcp"  # Container.RAPID_PORT_CONTAINER in SAM 1.170
MAX_HEAD = 64 * 1024
MAX_CREATE_BODY = 8 * 1024 * 1024
CREATE_PATH = re.compile(r"^(/v[0-9.]+)?/containers/create(\?.*)?$")
ATTACH_LOGS_PATH = re.compile(r"^(/v[0-9.]+)?/containers/[^/?]+/attach\?(.*&)?logs=(1|true)(&|$)")

Log = Callable[[str], None]


class ProxyError(Exception):
    """A request the proxy cannot pass on; answered with 400 and this message."""


def rie_host_port(bindings: Mapping[str, Any]) -> int | None:
    """The host port SAM bound container port 8080 to: where it will send invocations."""
    for binding in bindings.get(RIE_PORT) or []:
        port = str(binding.get("HostPort") or "")
        if port.isdigit():
            return int(port)
    return None


def rewrite_create(
    body: dict[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    free_port: Callable[[], int] = free_port,
) -> dict[str, Any]:
    """Rewrite a container-create body (Docker API) for host networking; see the module doc."""
    host_config = body.get("HostConfig") or {}
    bindings = host_config.pop("PortBindings", None) or {}
    host_config["NetworkMode"] = "host"
    body["HostConfig"] = host_config
    body.pop("ExposedPorts", None)

    entrypoint = body.get("Entrypoint")
    if isinstance(entrypoint, list) and entrypoint and entrypoint[0] == RIE:
        port = rie_host_port(bindings)
        if port is None:
            raise ProxyError(f"SAM bound no host port for the emulator's {RIE_PORT}")
        body["Entrypoint"] = [
            *entrypoint,
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{port}",
            "--runtime-api-address",
            f"127.0.0.1:{free_port()}",
        ]

    variables = list(body.get("Env") or [])
    present = {item.split("=", 1)[0] for item in variables}
    variables += [f"{name}={value}" for name, value in (env or {}).items() if name not in present]
    body["Env"] = variables
    body["Labels"] = {**(body.get("Labels") or {}), **(labels or {})}
    return body


def split_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """(method, target, version, headers) of an HTTP/1.x request head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProxyError(f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProxyError(f"malformed header line: {line[:80]!r}")
        headers.append((name, value.strip()))
    return parts[0], parts[1], parts[2], headers


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def join_head(request_line: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [request_line, *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def prepare_request(
    head: bytes,
    read_body: Callable[[int], bytes],
    *,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    free_port: Callable[[], int] = free_port,
    log: Log | None = None,
) -> bytes:
    """The bytes to send upstream first: the head (and, for a create, the rewritten body).

    Any other request's body is left in the client socket for the relay to copy.
    """
    method, target, version, headers = split_head(head)
    upgrade = header(headers, "Upgrade") is not None
    if not upgrade:  # one request per connection; an upgrade (attach) keeps its Connection
        headers = [(k, v) for k, v in headers if k.lower() not in ("connection", "keep-alive")]
        headers.append(("Connection", "close"))
    body = b""
    if method == "POST" and CREATE_PATH.match(target):
        if header(headers, "Transfer-Encoding") is not None:
            raise ProxyError("a chunked container-create body is not supported")
        length = int(header(headers, "Content-Length") or "0")
        if not 0 < length <= MAX_CREATE_BODY:
            raise ProxyError(f"container-create body of {length} bytes")
        request = rewrite_create(
            json.loads(read_body(length)), env=env, labels=labels, free_port=free_port
        )
        body = json.dumps(request).encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        if log is not None:
            log(
                f"create {request.get('Image')}: host network, entrypoint "
                f"{' '.join(request.get('Entrypoint') or [])}"
            )
    return join_head(f"{method} {target} {version}", headers) + body


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, bytes read past it) from a client; ProxyError if it ends or grows too long."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise ProxyError("request head too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise ProxyError("connection closed before a full request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


class AttachFraming:
    """Re-frame an attach response (HTTP head, then Docker's multiplexed frames) from podman 4.3.

    A frame is a header (stream id 0/1/2, three zero bytes, a big-endian length) and its
    payload. Podman's log replay puts each line's newline after the frame; a newline where a
    header should start can only be that, so it is sent as a one-byte frame of the same stream.
    Anything else unexpected (a TTY stream, an error body) is passed on unchanged from there on.
    """

    def __init__(self) -> None:
        self.pending = b""
        self.in_head = True
        self.left = 0  # payload bytes of the current frame still to pass on
        self.stream = 1
        self.raw = False

    def feed(self, data: bytes) -> bytes:
        if self.raw:
            return data
        self.pending += data
        out = bytearray()
        if self.in_head:
            end = self.pending.find(b"\r\n\r\n")
            if end < 0:
                return b""
            out += self.pending[: end + 4]
            self.pending = self.pending[end + 4 :]
            self.in_head = False
        while self.pending:
            if self.left:
                payload = self.pending[: self.left]
                out += payload
                self.left -= len(payload)
                self.pending = self.pending[len(payload) :]
            elif self.pending[0] == 0x0A:
                out += bytes([self.stream, 0, 0, 0, 0, 0, 0, 1]) + b"\n"
                self.pending = self.pending[1:]
            elif self.pending[0] not in (0, 1, 2):
                self.raw = True
                out += self.pending
                self.pending = b""
            elif len(self.pending) < 8:
                break
            else:
                self.stream = self.pending[0]
                self.left = int.from_bytes(self.pending[4:8], "big")
                out += self.pending[:8]
                self.pending = self.pending[8:]
        return bytes(out)

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return rest


def relay(
    client: socket.socket, upstream: socket.socket, framing: AttachFraming | None = None
) -> None:
    """Copy both ways until podman closes (it was asked to), or the client goes away."""
    selector = selectors.DefaultSelector()
    peers = {client: upstream, upstream: client}
    selector.register(client, selectors.EVENT_READ)
    selector.register(upstream, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(65536)
                if data:
                    if source is upstream and framing is not None:
                        data = framing.feed(data)
                    peers[source].sendall(data)
                elif source is upstream:
                    if framing is not None:
                        client.sendall(framing.flush())
                    return
                else:  # the client sent all it will; the answer may still be streaming
                    selector.unregister(client)
    except OSError:
        return
    finally:
        selector.close()


class DockerApiProxy(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(
        self,
        listen: Path,
        upstream: Path,
        *,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        log: Log | None = None,
    ):
        self.upstream = upstream
        self.env = dict(env or {})
        self.labels = dict(labels or {})
        self.log = log
        listen.unlink(missing_ok=True)
        super().__init__(str(listen), _Handler)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="docker-api-proxy", daemon=True)
        thread.start()
        return thread


class _Handler(socketserver.BaseRequestHandler):
    server: DockerApiProxy
    request: socket.socket

    def handle(self) -> None:
        client = self.request
        try:
            head, rest = read_head(client)

            def read_body(length: int) -> bytes:
                body = rest
                while len(body) < length:
                    chunk = client.recv(min(65536, length - len(body)))
                    if not chunk:
                        raise ProxyError("connection closed inside the request body")
                    body += chunk
                return body[:length]

            target = split_head(head)[1]
            is_create = CREATE_PATH.match(target) is not None
            framing = AttachFraming() if ATTACH_LOGS_PATH.match(target) else None
            first = prepare_request(
                head,
                read_body,
                env=self.server.env,
                labels=self.server.labels,
                log=self.server.log,
            )
        except (ProxyError, ValueError) as exc:
            self._refuse(client, str(exc))
            return
        except OSError:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            try:
                upstream.connect(str(self.server.upstream))
                # A create's body was consumed and rewritten; anything else read past the
                # head is the start of the body and goes along unchanged.
                upstream.sendall(first if is_create else first + rest)
            except OSError as exc:
                self._refuse(client, f"podman API at {self.server.upstream}: {exc}", status=502)
                return
            relay(client, upstream, framing)

    def _refuse(self, client: socket.socket, message: str, status: int = 400) -> None:
        if self.server.log is not None:
            self.server.log(f"refused: {message}")
        body = json.dumps({"message": f"sam-local proxy: {message}"}).encode()
        reason = "Bad Request" if status == 400 else "Bad Gateway"
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # the client may be gone already
            client.sendall(head.encode() + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=Path, required=True, help="socket for DOCKER_HOST")
    parser.add_argument("--upstream", type=Path, required=True, help="podman system service")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--label", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    pairs = [item.partition("=") for item in args.env + args.label]
    if any(not sep or not name for name, sep, _ in pairs):
        parser.error("--env and --label take NAME=VALUE")
    env = dict(item.split("=", 1) for item in args.env)
    labels = dict(item.split("=", 1) for item in args.label)

    def log(message: str) -> None:
        print(f"[proxy] {message}", file=sys.stderr, flush=True)

    with DockerApiProxy(args.listen, args.upstream, env=env, labels=labels, log=log) as server:
        log(f"listening on {args.listen}, forwarding to {args.upstream}")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
