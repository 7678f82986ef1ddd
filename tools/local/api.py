"""A local stand-in for API Gateway (REST API, proxy integration, payload v1) on 127.0.0.1.

Each request is matched to a route of the template, turned into the event API Gateway would send,
given to the function (through `rie.FunctionPool`), and the function's proxy response is written
back. Errors API Gateway produces itself (403 without the API key, 502 for a failed function,
413 for a body over 10 MB) carry API Gateway's own bodies; the server's own errors (404, 405, 400,
411, and 500 for a bug in this module) use the project's error shape
{"error": {"code", "message", "details": []}}.

Connections are kept alive, so the request body is always read, or the connection closed, before
any reply: an unread body would be parsed as the next request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tools.local.rie import FunctionError, LogSink, PoolExhausted, print_log
from tools.local.template import Route

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
Invoke = Callable[[str, dict[str, Any]], Any]  # (function id, event) -> proxy response
_DIGITS = re.compile(r"[0-9]+")  # Content-Length is 1*DIGIT: no sign, space or "_" as int() allows
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a valid header name
_NO_CONTROLS = re.compile(r"[^\r\n\0]*")  # a header value that cannot split the response


def _utf8(text: str) -> bytes:
    """`text` as UTF-8, total: surrogateescape'd bytes (os.environ, argv) come back as they were."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _wire_bytes(header_value: str) -> bytes:
    """A header value's bytes on the wire: http.server decodes (and encodes) them as ISO-8859-1;
    text beyond it is taken as UTF-8."""
    try:
        return header_value.encode("latin-1")
    except UnicodeEncodeError:
        return _utf8(header_value)


def keys_match(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of bytes: compare_digest raises TypeError on non-ASCII str."""
    if given is None or expected is None:
        return False
    return hmac.compare_digest(_wire_bytes(given), _utf8(expected))


class LocalApiServer(ThreadingHTTPServer):
    daemon_threads = True  # an idle keep-alive connection must not hold up shutdown
    # listen()'s backlog: connections the kernel queues until the accept loop takes them. The
    # default of 5 reset 6 of 32 clients connecting at once; the kernel caps it at somaxconn.
    request_queue_size = 128

    def __init__(
        self,
        port: int,
        routes: list[Route],
        invoke: Invoke,
        api_key: str | None,
        log: LogSink = print_log,
    ):
        self.routes = routes
        self.invoke = invoke
        self.api_key = api_key
        self.log = log
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port


def path_parameters(template: str, path: str) -> dict[str, str] | None:
    """API Gateway's match of a resource path ("/v2/models/{name}") against a request path: its
    parameters ({} for a plain path), or None when `path` does not match; a {param} is one
    non-empty segment."""
    wanted, given = template.strip("/").split("/"), path.strip("/").split("/")
    if len(wanted) != len(given):
        return None
    found: dict[str, str] = {}
    for part, value in zip(wanted, given, strict=True):
        if part.startswith("{") and part.endswith("}") and value:
            found[part[1:-1]] = unquote(value)
        elif part != value:
            return None
    return found


def build_event(
    route: Route,
    method: str,
    target: str,
    *,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    api_key: str | None,
) -> dict[str, Any]:
    """The event API Gateway sends a Lambda proxy integration (REST API, payload v1)."""
    url = urlsplit(target)
    single: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value  # API Gateway keeps the last value in `headers`
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    # Without binaryMediaTypes API Gateway passes text as is; bytes that are not UTF-8 could not
    # be passed that way, so they arrive base64-encoded (as for a binary media type).
    text: str | None = None
    is_base64 = False
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode(), True
    now = time.time()
    request_id = str(uuid.uuid4())
    user_agent = single.get("User-Agent")
    return {
        "resource": route.path,
        "path": url.path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters(route.path, url.path) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": single.get("Host", "127.0.0.1"),
            "extendedRequestId": request_id,
            "httpMethod": method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "apiKey": api_key,
                "apiKeyId": "local" if api_key else None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": source_ip,
                "user": None,
                "userAgent": user_agent,
                "userArn": None,
            },
            # The path as the client requested it: here without the stage, which this server
            # does not put in its URLs (as `sam local start-api`); on AWS it is "/dev/predict".
            "path": url.path,
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": formatdate(now, usegmt=True),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "local",
            "resourcePath": route.path,
            "stage": route.stage,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


class _Handler(BaseHTTPRequestHandler):
    server: LocalApiServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two sends; with Nagle on, a keep-alive client's next request
    # waits ~40 ms for a delayed ACK (measured by benchmarks/bench_http.py).
    disable_nagle_algorithm = True
    timeout = 60  # idle keep-alive connections are closed after a minute

    def do_request(self) -> None:
        started = time.perf_counter()
        self._body_unread = True  # until _read_body has consumed the declared body
        self._reply_flushed = False  # once the status line is out, no other reply can be sent
        status: int | None
        try:
            status = self._handle()
        except Exception as exc:  # every request gets an answer: see _fail
            status = self._fail(exc)
        elapsed = (time.perf_counter() - started) * 1000
        shown = "-" if status is None else status
        self.server.log(f'[api] "{self.command} {self.path}" {shown} {elapsed:.1f} ms')

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_request

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, QUERY, ...) takes the same path, so a route that does not
        take it answers 405 naming those it does; http.server would answer 501 in HTML."""
        if name.startswith("do_"):
            return self.do_request
        raise AttributeError(name)

    def _fail(self, exc: Exception) -> int | None:
        """A bug in this module: 500 in the project's error shape, then close the connection.

        Not 502, which API Gateway (and `_invoke`) use for a failed integration: this error is
        the emulator's own, and reporting it as the function's would send one looking in the
        wrong place. The connection is closed as its state (an unread body?) is unknown.
        """
        self.close_connection = True
        if isinstance(exc, ConnectionError | TimeoutError):
            self.server.log(f"[api] connection lost: {exc!r}")
            return None  # the client is gone: nobody to answer
        detail = "".join(traceback.format_exception(exc)).rstrip()
        self.server.log(f"[api] internal error handling {self.command} {self.path}:\n{detail}")
        if self._reply_flushed:
            return None  # part of a reply is out: closing the connection is all that is left
        self._headers_buffer: list[bytes] = []  # drop the headers of a reply that failed midway
        message = f"the local API failed: {type(exc).__name__}: {exc}"
        return self._error(500, "internal_error", message)

    def _handle(self) -> int:
        # The body first: a 404 or 405 that left it unread would make it the next request.
        body = self._read_body()
        if isinstance(body, int):
            return body  # an error was sent and the connection will be closed
        path = urlsplit(self.path).path
        routes = [r for r in self.server.routes if path_parameters(r.path, path) is not None]
        if not routes:
            return self._error(404, "not_found", f"no route for {path}")
        route = next((r for r in routes if r.method in (self.command, "ANY")), None)
        if route is None:
            allowed = ", ".join(sorted(r.method for r in routes))
            message = f"{self.command} is not allowed on {path}; use {allowed}"
            return self._error(405, "method_not_allowed", message, {"Allow": allowed})
        key = self.headers.get("x-api-key")
        expected = self.server.api_key
        if route.api_key_required and expected is not None and not keys_match(key, expected):
            forbidden = {"x-amzn-ErrorType": "ForbiddenException"}
            return self._send(403, {"message": "Forbidden"}, forbidden)
        return self._invoke(route, body, key if route.api_key_required else None)

    def _read_body(self) -> bytes | int:
        """The request body, or the status of the error sent instead (the body left unread and
        the connection closed: where the next request would start is unknown or too far)."""
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True
            return self._error(411, "length_required", "send a Content-Length")
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not lengths:
            self._body_unread = False
            return b""
        if len(lengths) > 1 or not _DIGITS.fullmatch(value := lengths.pop()):
            self.close_connection = True
            return self._error(400, "bad_request", "invalid Content-Length")
        length = int(value)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return self._send(413, {"message": "Request Too Long"})
        body = self.rfile.read(length) if length else b""
        self._body_unread = False
        if len(body) < length:
            self.close_connection = True
            return self._error(400, "bad_request", "the body is shorter than its Content-Length")
        return body

    def _invoke(self, route: Route, body: bytes, api_key: str | None) -> int:
        event = build_event(
            route,
            self.command,
            self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            api_key=api_key,
        )
        try:
            response = self.server.invoke(route.function_id, event)
        except PoolExhausted:
            return self._send(429, {"message": "Too Many Requests"})
        except FunctionError as exc:
            self.server.log(f"[api] {exc}")
            return self._send(502, {"message": "Internal server error"})
        except Exception as exc:  # the integration failed, however: 502
            self.server.log(f"[api] invoking {route.function_id} failed: {exc!r}")
            return self._send(502, {"message": "Internal server error"})
        return self._proxy_response(response)

    def _proxy_response(self, response: Any) -> int:
        """Write a Lambda proxy response; a malformed one is a 502, as in API Gateway."""
        try:
            status = int(response["statusCode"])
            body = response.get("body") or ""
            if response.get("isBase64Encoded"):
                data = base64.b64decode(body, validate=True)
            else:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers = [
                (str(name), str(value))
                for name, values in (response.get("multiValueHeaders") or {}).items()
                for value in values
            ]
            seen = {name.lower() for name, _ in headers}
            headers += [
                (str(n), str(v))
                for n, v in (response.get("headers") or {}).items()
                if n.lower() not in seen
            ]
            if not 100 <= status <= 599:
                raise ValueError(status)
            for name, value in headers:  # no response splitting through the function's headers
                if not (_TOKEN.fullmatch(name) and _NO_CONTROLS.fullmatch(value)):
                    raise ValueError(name)
        except (TypeError, KeyError, ValueError, AttributeError, binascii.Error):
            self.server.log(f"[api] malformed Lambda proxy response: {response!r:.200}")
            return self._send(502, {"message": "Internal server error"})
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))  # API Gateway's default
        return self._write(status, headers, data)

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> int:
        document = {"error": {"code": code, "message": message, "details": []}}
        return self._send(status, document, headers)

    def _send(self, status: int, document: Any, headers: dict[str, str] | None = None) -> int:
        extra = [("Content-Type", "application/json"), *(headers or {}).items()]
        return self._write(status, extra, json.dumps(document).encode())

    def _write(self, status: int, headers: list[tuple[str, str]], data: bytes) -> int:
        if self._body_unread:
            self.close_connection = True  # never leave a body to be read as the next request
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                # send_header encodes ISO-8859-1 (and raises beyond it): other text goes out
                # as its UTF-8 bytes
                self.send_header(name, _wire_bytes(value).decode("latin-1"))
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self._reply_flushed = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return status

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's signature)
        pass  # do_request logs one line per request instead


def serve_in_thread(server: LocalApiServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="local-api", daemon=True)
    thread.start()
    return thread
