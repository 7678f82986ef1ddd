"""Loopback helpers shared by the local tooling, the SAM CLI check, the benchmarks and the tests:
a free port on 127.0.0.1, waiting for a server to answer, a server that hangs (fault injection),
and the dummy credentials a local S3 needs."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

# moto accepts any credentials; boto3 refuses to sign without some.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound now (checked before anything slow starts).

    With SO_REUSEADDR, as the local API's server binds: a port a listener holds is taken, one
    with only connections in TIME_WAIT (from a server just stopped) is free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_http(
    url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until url answers (any HTTP status) or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


class HangingServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers: an S3 that
    hangs. Use as a context manager; `accepted` counts the connections it swallowed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="hanging-server").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.accepted.append(conn)

    def __enter__(self) -> HangingServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()
