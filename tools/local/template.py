"""Read a SAM template the way `sam local` does, with SAM CLI's own code: functions (handler,
code, runtime, timeout, memory, layers, environment) and API routes, with parameters and
`--env-vars` overrides applied.

What runs where
---------------
Production: `sam build` / `sam deploy`. CloudFormation applies the SAM transform, Lambda runs each
function on its managed python3.12 runtime with the published MLLayer, the environment holds the
real values (MODEL_BUCKET is the stack's bucket), and API Gateway serves the routes, enforcing API
keys, the usage plan, throttling and quotas.

`sam local` (`make sam-local-test`, tools/sam_local/check.py): SAM CLI reads the template with the
providers used below and runs each function in a container image of the Lambda runtime; its
start-api does not check API keys.

This stand-in (tools/local): the template is read here, by SAM CLI's providers, so what a function
gets is what `sam local` would give it; the functions then run on the host's Python under the
Lambda RIE (rie.py), api.py serves the routes as REST API (v1) events and checks the API key
itself, and S3 is a moto server on 127.0.0.1.

What comes from SAM CLI (aws-sam-cli 1.170.0)
----------------------------------------------
`SamLocalStackProvider.get_stacks` parses the YAML, runs SAM's plugins (Globals, the implicit
`ServerlessRestApi`), applies parameter defaults and overrides and resolves intrinsics with SAM
CLI's `IntrinsicResolver`; `SamFunctionProvider` gives each function's handler, code and layer
folders, runtime, timeout, memory and environment; `EnvironmentVariables.resolve` applies the
priority (`--env-vars` > shell > template) and the stringification. Values therefore follow
`sam local`, also where it is surprising: `!Ref` to a resource is its logical id, `!GetAtt X.Arn`
a made-up Lambda ARN. The deliberate differences: `!Ref` to an `AWS::S3::Bucket` is the local
bucket's name (`bucket`), given to SAM as a parameter override, which is exactly what
`sam local --parameter-overrides ModelBucket=local-models` does; and `!Ref` to an `AWS::KMS::Key`
is "" (the signing key's logical id would make the functions call KMS with a key that does not
exist): locally, versions are published unsigned, as events/env.json also says for `sam local`.

What is still read here, and why
--------------------------------
- Routes and `ApiKeyRequired`: from the `Api` events of SAM's functions (after SAM's Globals and
  intrinsics), not from `samcli.lib.providers.api_provider.ApiProvider`. Its `Route` has no notion
  of API keys (`sam local start-api` never checks them; the local API does), it reports one
  `stage_name` for all APIs (for a template with `Api` at stage "dev" plus the implicit API it says
  "Prod" for both), and it expands `ANY` into seven methods.
- Which `--env-vars` entry applies: the same precedence as SAM CLI's
  `LocalLambdaRunner._make_env_vars` ("Parameters", then the function's logical id, id, name or
  full path), restated here because that method lives on a runner that needs a container runtime,
  and it asks a boto3 session for credentials, whose chain may call the instance metadata
  endpoint (169.254.169.254): a network call this module must never make.
- Where code runs from: `.aws-sam/build/<LogicalId>` when `built`; a layer's `python/` folder when
  it has one (else the folder itself, as SAM's Python builder would put it there); defaults for
  what Lambda defaults (runtime python3.12, 3 s, 128 MB); code in S3, inline code and images are
  refused, layers given as ARNs are skipped with a warning (`sam local` would download them).

Cost, measured on this machine (2 CPUs, other jobs running; fresh `python` processes importing
this module and loading template.yaml twice, 15 interleaved runs each, medians): the previous
hand-written reader took 560 ms to import (nearly all of it cfnlint, for its YAML loader), 7 ms
per load, 750 ms per process; with SAM CLI's providers the import is 35 ms, the first load 750 ms
(~630 ms of it importing samtranslator, botocore, samcli, pydantic, and the `docker` and
`watchdog` packages that `sam_function_provider` imports for its file watcher; no Docker engine
is contacted), each later load 80 ms (samtranslator's schema validation and PyYAML's pure-Python
loader), 1.1 s per process. So a runner start costs ~0.35 s more; in exchange Globals, conditions
and intrinsics resolve as `sam local` resolves them, and SAM validates the template. The types
alone are cheap to import: rie.py, api.py and demo.py no longer pay for cfnlint.

Network: nothing here opens a connection or resolves a host name (a unit test audits it); the
only socket is urllib3's import-time bind of [::1]:0 to probe for IPv6. SAM CLI sends telemetry
from its `sam` command wrapper, never called here; the one tracker on this path (for
CloudFormation language extensions, off here) sends nothing under SAM_CLI_TELEMETRY=0, which
`load_template` sets unless the caller set it.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BUCKET = "local-models"
IMPLICIT_API = "ServerlessRestApi"  # SAM's API for Api events without a RestApiId
IMPLICIT_STAGE = "Prod"
# What Lambda (and `sam local`) uses when the template does not say.
DEFAULT_RUNTIME = "python3.12"
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
FUNCTION_TYPES = {"AWS::Serverless::Function": "CodeUri", "AWS::Lambda::Function": "Code"}
SAM_LOGGERS = ("samcli", "samtranslator")


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    code_dir: Path
    runtime: str
    timeout: int
    memory_size: int
    layer_dirs: tuple[Path, ...]  # each as it would appear under /opt/python
    environment: dict[str, str]


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or "ANY"
    path: str
    function_id: str
    api_key_required: bool
    stage: str


@dataclass
class App:
    """What the local runner serves: functions by logical id and their API routes."""

    functions: dict[str, FunctionSpec]
    routes: list[Route]
    warnings: list[str] = field(default_factory=list)
    # Firehose delivery streams (DirectPut to S3) by logical id: their S3 prefix as SAM resolves
    # it (parameters substituted; Firehose's own !{...} expressions left as written).
    delivery_streams: dict[str, str] = field(default_factory=dict)


class TemplateError(ValueError):
    """The template asks for something the local runner cannot do."""


def load_env_vars(path: Path | None) -> dict[str, dict[str, Any]]:
    """An `--env-vars` file: {"FunctionId": {"VAR": value}, "Parameters": {"VAR": value}}."""
    if path is None:
        return {}
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise TemplateError(f"{path}: expected {{'FunctionId': {{'VAR': 'value'}}, ...}}")
    return data


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


@contextmanager
def _sam_warnings(sink: list[str]) -> Iterator[None]:
    """SAM CLI's warnings go to `sink` (the runner prints App.warnings), not to stderr."""
    handler = _Collect(sink)
    loggers = [logging.getLogger(name) for name in SAM_LOGGERS]
    propagate = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, before in zip(loggers, propagate, strict=True):
            logger.removeHandler(handler)
            logger.propagate = before


def _read_with_sam(path: Path, parameters: Mapping[str, Any], bucket: str) -> tuple[Any, Any]:
    """SAM CLI's stacks and functions for `path`, `!Ref` to a bucket resolving to `bucket`."""
    os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
    # Imported here (~630 ms): paid by load_template only, not by every user of these types.
    from samcli.commands.exceptions import UserException  # type: ignore[import-untyped]
    from samcli.commands.validate.lib.exceptions import (  # type: ignore[import-untyped]
        InvalidSamDocumentException,
    )
    from samcli.lib.intrinsic_resolver.invalid_intrinsic_exception import (  # type: ignore[import-untyped]
        InvalidIntrinsicException,
    )
    from samcli.lib.providers.exceptions import (  # type: ignore[import-untyped]
        InvalidLayerReference,
        MissingFunctionNameException,
        RemoteStackLocationNotSupported,
    )
    from samcli.lib.providers.provider import (  # type: ignore[import-untyped]
        Stack,
        get_full_path,
    )
    from samcli.lib.providers.sam_function_provider import (  # type: ignore[import-untyped]
        SamFunctionProvider,
    )
    from samcli.lib.providers.sam_stack_provider import (  # type: ignore[import-untyped]
        SamLocalStackProvider,
    )

    failures = (
        UserException,  # template missing or not YAML, handler missing, bad layer ARN, ...
        InvalidSamDocumentException,
        InvalidIntrinsicException,
        InvalidLayerReference,
        MissingFunctionNameException,
        RemoteStackLocationNotSupported,
    )
    try:
        stacks, _remote = SamLocalStackProvider.get_stacks(
            str(path), parameter_overrides=dict(parameters)
        )
        # The root stack again, with each bucket's logical id translated to the local bucket, as
        # `--parameter-overrides ModelBucket=local-models` would. A Stack resolves its template
        # on first use, so this costs no second parse.
        root = stacks[0]
        buckets = {
            str(logical_id): bucket
            for logical_id, resource in root.raw_resources.items()
            if isinstance(resource, dict) and resource.get("Type") == "AWS::S3::Bucket"
        }
        keys = {
            str(logical_id)
            for logical_id, resource in root.raw_resources.items()
            if isinstance(resource, dict) and resource.get("Type") == "AWS::KMS::Key"
        }
        stacks[0] = Stack(
            root.parent_stack_path,
            root.name,
            root.location,
            {**buckets, **(root.parameters or {})},
            _without_refs(root.template_dict, keys),
            root.metadata,
            root.original_template_dict,
        )
        functions = list(SamFunctionProvider(stacks).get_all())
    except failures as exc:
        raise TemplateError(f"{path}: {exc}") from exc
    # SamFunctionProvider leaves out a function whose code is in S3, with only a warning.
    found = {function.full_path for function in functions}
    for stack in stacks:
        for logical_id, resource in stack.resources.items():
            key = FUNCTION_TYPES.get(resource.get("Type"))
            if key and get_full_path(stack.stack_path, logical_id) not in found:
                code = (resource.get("Properties") or {}).get(key)
                raise TemplateError(f"{logical_id}: {key} {code!r} is not a local folder")
    return stacks, functions


def _without_refs(node: Any, logical_ids: set[str]) -> Any:
    """`node` with each `!Ref` to one of `logical_ids` replaced by "" (SAM's resolver would give
    the logical id, and a parameter override of "" is ignored as falsy)."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in logical_ids:
            return ""
        return {key: _without_refs(value, logical_ids) for key, value in node.items()}
    if isinstance(node, list):
        return [_without_refs(value, logical_ids) for value in node]
    return node


def _env_overrides(env_vars: Mapping[str, Mapping[str, Any]], function: Any) -> dict[str, Any]:
    # As SAM CLI's LocalLambdaRunner._make_env_vars: "Parameters" applies to every function, the
    # function's own entry (by logical id, id, name or full path) wins over it.
    overrides = dict(env_vars.get("Parameters") or {})
    own = (
        env_vars.get(function.name)
        or env_vars.get(function.function_id)
        or env_vars.get(function.functionname)
        or env_vars.get(function.full_path)
    )
    overrides.update(own or {})
    return overrides


def _environment(
    function: Any, overrides: Mapping[str, Any], shell_env: Mapping[str, str]
) -> dict[str, str]:
    from samcli.local.lambdafn.env_vars import (  # type: ignore[import-untyped]
        EnvironmentVariables,
    )

    variables = (function.environment or {}).get("Variables") or {}
    resolved = EnvironmentVariables(
        function.name,
        function.memory,
        function.timeout,
        function.handler,
        function.logging_config,
        variables=variables,
        shell_env_values=dict(shell_env),
        override_values=dict(overrides),
    ).resolve()
    # resolve() adds the AWS_* variables sam local sets; rie.py sets those for the stand-in.
    return {str(name): str(resolved[name]) for name in variables}


def _int(value: Any, default: int, what: str) -> int:
    try:
        return int(default if value is None else value)
    except (TypeError, ValueError):
        raise TemplateError(f"{what}: cannot resolve {value!r} to a number") from None


def load_template(
    path: Path,
    *,
    env_vars: Mapping[str, Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Any] | None = None,
    shell_env: Mapping[str, str] | None = None,
    bucket: str = DEFAULT_BUCKET,
    built: bool = False,
) -> App:
    """Parse `path` (SAM YAML) into functions and routes, with SAM CLI's providers.

    env_vars: the `--env-vars` JSON. parameters: parameter overrides. shell_env: the caller's
    environment, which (as in `sam local`) overrides template values of declared variables only.
    bucket: the local name for `!Ref` to an S3 bucket. built: use `.aws-sam/build` when present.
    """
    path = Path(path).resolve()
    build_dir = path.parent / ".aws-sam" / "build"
    app = App(functions={}, routes=[])
    with _sam_warnings(app.warnings), warnings.catch_warnings():
        # SAM CLI calls samtranslator's deprecated validator API; those are not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        stacks, functions = _read_with_sam(path, parameters or {}, bucket)
        resources = {stack.stack_path: stack.resources for stack in stacks}
        app.delivery_streams = _delivery_streams(stacks[0].resources)
        for function in functions:
            logical_id = str(function.full_path)
            app.functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                handler=str(function.handler or ""),
                code_dir=_code_dir(function, build_dir if built else None),
                runtime=str(function.runtime or DEFAULT_RUNTIME),
                timeout=_int(function.timeout, DEFAULT_TIMEOUT, f"{logical_id}.Timeout"),
                memory_size=_int(function.memory, DEFAULT_MEMORY, f"{logical_id}.MemorySize"),
                layer_dirs=_layer_dirs(function, build_dir if built else None, app.warnings),
                environment=_environment(
                    function, _env_overrides(env_vars or {}, function), shell_env or {}
                ),
            )
            app.routes.extend(_routes(function, resources.get(function.stack_path) or {}))
    return app


def _delivery_streams(resources: Mapping[str, Any]) -> dict[str, str]:
    """Each Firehose delivery stream with an S3 destination: logical id -> its S3 prefix."""
    out: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        if resource.get("Type") != "AWS::KinesisFirehose::DeliveryStream":
            continue
        properties = resource.get("Properties") or {}
        destination = properties.get("ExtendedS3DestinationConfiguration") or properties.get(
            "S3DestinationConfiguration"
        )
        if isinstance(destination, dict) and isinstance(destination.get("Prefix", ""), str):
            out[str(logical_id)] = destination.get("Prefix", "")
    return out


def _code_dir(function: Any, build_dir: Path | None) -> Path:
    from samcli.lib.utils.packagetype import ZIP  # type: ignore[import-untyped]

    built = None if build_dir is None else build_dir / str(function.full_path)
    if built is not None and built.is_dir():
        return built
    if function.packagetype != ZIP or function.inlinecode is not None or not function.codeuri:
        code = function.imageuri or function.inlinecode
        raise TemplateError(f"{function.full_path}: CodeUri is not a local folder ({code!r})")
    return Path(function.codeuri)


def _layer_dirs(function: Any, build_dir: Path | None, sink: list[str]) -> tuple[Path, ...]:
    dirs = []
    for layer in function.layers:
        if not layer.is_defined_within_template:
            sink.append(f"layer {layer.arn!r} is not a layer in this template; skipped")
            continue
        built = None if build_dir is None else build_dir / str(layer.full_path) / "python"
        if built is not None and built.is_dir():
            dirs.append(built)
            continue
        if not layer.codeuri:
            sink.append(f"layer {layer.full_path}: content is not a local folder; skipped")
            continue
        folder = Path(layer.codeuri)
        # A pre-packaged layer keeps its modules in python/; otherwise SAM's Python builder puts
        # the folder's contents there.
        dirs.append(folder / "python" if (folder / "python").is_dir() else folder)
    return tuple(dirs)


def _routes(function: Any, resources: Mapping[str, Any]) -> list[Route]:
    """The function's `Api` events, after SAM's Globals, implicit API and intrinsics."""
    routes = []
    for event in (function.events or {}).values():
        if event.get("Type") != "Api":
            continue
        props = event.get("Properties") or {}
        api_ref = props.get("RestApiId")
        api_id = str(api_ref.get("Ref") if isinstance(api_ref, dict) else api_ref or IMPLICIT_API)
        api_props = (resources.get(api_id) or {}).get("Properties") or {}
        api_default = (api_props.get("Auth") or {}).get("ApiKeyRequired", False)
        key_required = (props.get("Auth") or {}).get("ApiKeyRequired", api_default)
        stage = api_props.get("StageName")
        routes.append(
            Route(
                method=str(props.get("Method", "any")).upper(),
                path=str(props.get("Path", "/")),
                function_id=str(function.full_path),
                api_key_required=key_required is True or str(key_required).lower() == "true",
                stage=stage if isinstance(stage, str) and stage else IMPLICIT_STAGE,
            )
        )
    return routes
