"""Read a SAM template the way `sam local` does: functions (handler, code, layers, environment)
and API routes, with parameters and `--env-vars` overrides applied.

Only what the local runner needs is resolved: `!Ref` to a parameter, a pseudo parameter or a
resource, and `!Sub` over those. Anything else (`!If`, `!GetAtt`, ...) becomes an empty string, as
`sam local` does for values it cannot resolve.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

DEFAULT_BUCKET = "local-models"
# What `sam local` puts in the environment for pseudo parameters.
PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "local",
    "AWS::URLSuffix": "amazonaws.com",
}
IMPLICIT_API = "ServerlessRestApi"  # SAM's API for Api events without a RestApiId


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


def stringify(value: Any) -> str:
    """Lambda environment values are strings; mirrors sam's EnvironmentVariables."""
    if value is None or isinstance(value, dict | list | tuple):
        return ""  # an intrinsic that was not resolved
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Resolver:
    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, Any], bucket: str):
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.values: dict[str, Any] = dict(PSEUDO_PARAMETERS)
        for name, spec in (template.get("Parameters") or {}).items():
            self.values[str(name)] = spec.get("Default", "")
        self.values.update(parameters)
        self.bucket = bucket

    def ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        resource = self.resources.get(name) or {}
        if resource.get("Type") == "AWS::S3::Bucket":
            return self.bucket
        return None  # another resource: no local stand-in

    def resolve(self, value: Any) -> Any:
        """A plain value for `value`, or None when it cannot be resolved locally."""
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Fn::Sub":
                return self._sub(arg)
            if str(key).startswith("Fn::") or key == "Condition":
                return None
        if isinstance(value, dict | list):
            return value
        return value if value is None or isinstance(value, bool | int | float) else str(value)

    def _sub(self, arg: Any) -> str | None:
        if isinstance(arg, list):  # [template, {var: value}]
            text, extra = str(arg[0]), {k: self.resolve(v) for k, v in dict(arg[1]).items()}
        else:
            text, extra = str(arg), {}
        missing = False

        def one(match: re.Match[str]) -> str:
            nonlocal missing
            name = match.group(1)
            value = extra[name] if name in extra else self.ref(name)
            if value is None:
                missing = True
                return ""
            return stringify(value)

        out = re.sub(r"\$\{([^}!]+)\}", one, text)
        return None if missing else out


def _merge_globals(properties: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals: maps merge (function wins), lists are concatenated, scalars are replaced."""
    merged = dict(defaults)
    for key, value in properties.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = _merge_globals(value, base)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = [*base, *value]
        else:
            merged[key] = value
    return merged


def _env_overrides(env_vars: Mapping[str, Mapping[str, Any]], logical_id: str) -> dict[str, Any]:
    # As `sam local invoke --env-vars`: "Parameters" applies to every function, the function's
    # own entry wins over it.
    overrides = dict(env_vars.get("Parameters", {}))
    overrides.update(env_vars.get(logical_id, {}))
    return overrides


def _int(resolver: _Resolver, value: Any, default: int, what: str) -> int:
    resolved = resolver.resolve(value) if value is not None else default
    try:
        return int(resolved)
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
    """Parse `path` (SAM YAML) into functions and routes.

    env_vars: the `--env-vars` JSON. parameters: parameter overrides. shell_env: the caller's
    environment, which (as in `sam local`) overrides template values of declared variables only.
    bucket: the local name for `!Ref` to an S3 bucket. built: use `.aws-sam/build` when present.
    """
    path = Path(path)
    root = path.resolve().parent
    template: dict[str, Any] = cfn_yaml.load(str(path))
    resolver = _Resolver(template, parameters or {}, bucket)
    resources: Mapping[str, Any] = template.get("Resources") or {}
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    globals_auth = ((template.get("Globals") or {}).get("Api") or {}).get("Auth") or {}
    app = App(functions={}, routes=[])
    build_dir = root / ".aws-sam" / "build"

    def layer_dir(ref: Any) -> Path | None:
        layer_id = str(ref.get("Ref")) if isinstance(ref, dict) else ""
        layer = resources.get(layer_id) or {}
        if layer.get("Type") not in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            app.warnings.append(f"layer {ref!r} is not a layer in this template; skipped")
            return None
        if built and (build_dir / layer_id / "python").is_dir():
            return build_dir / layer_id / "python"
        props = layer.get("Properties") or {}
        content = props.get("ContentUri") or props.get("Content")
        if not isinstance(content, str):
            app.warnings.append(f"layer {layer_id}: content is not a local folder; skipped")
            return None
        folder = root / content
        # A pre-packaged layer keeps its modules in python/; otherwise SAM's Python builder puts
        # the folder's contents there.
        return folder / "python" if (folder / "python").is_dir() else folder

    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = _merge_globals(resource.get("Properties") or {}, globals_fn)
        code_uri = resolver.resolve(props.get("CodeUri"))
        if built and (build_dir / logical_id).is_dir():
            code_dir = build_dir / logical_id
        elif isinstance(code_uri, str) and not code_uri.startswith("s3://"):
            code_dir = root / code_uri
        else:
            raise TemplateError(f"{logical_id}: CodeUri {code_uri!r} is not a local folder")
        variables = ((props.get("Environment") or {}).get("Variables")) or {}
        overrides = _env_overrides(env_vars or {}, logical_id)
        shell = shell_env or {}
        environment = {}
        for name, value in variables.items():
            # Priority as in sam: --env-vars > shell environment > template.
            chosen = overrides.get(name, shell.get(name, resolver.resolve(value)))
            environment[str(name)] = stringify(chosen)
        layers = [layer_dir(ref) for ref in props.get("Layers") or []]
        app.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            handler=str(props.get("Handler", "")),
            code_dir=code_dir,
            runtime=str(resolver.resolve(props.get("Runtime")) or "python3.12"),
            timeout=_int(resolver, props.get("Timeout"), 3, f"{logical_id}.Timeout"),
            memory_size=_int(resolver, props.get("MemorySize"), 128, f"{logical_id}.MemorySize"),
            layer_dirs=tuple(d for d in layers if d is not None),
            environment=environment,
        )
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "Api":
                app.routes.append(_route(resolver, resources, globals_auth, logical_id, event))
    return app


def _route(
    resolver: _Resolver,
    resources: Mapping[str, Any],
    globals_auth: Mapping[str, Any],
    function_id: str,
    event: Mapping[str, Any],
) -> Route:
    props = event.get("Properties") or {}
    api_ref = props.get("RestApiId")
    api_id = str(api_ref.get("Ref") if isinstance(api_ref, dict) else api_ref or IMPLICIT_API)
    api_props = (resources.get(api_id) or {}).get("Properties") or {}
    api_auth = _merge_globals(api_props.get("Auth") or {}, globals_auth)
    key_required = (props.get("Auth") or {}).get("ApiKeyRequired", api_auth.get("ApiKeyRequired"))
    stage = resolver.resolve(api_props.get("StageName")) if api_props else "Prod"
    return Route(
        method=str(props.get("Method", "any")).upper(),
        path=str(props.get("Path", "/")),
        function_id=function_id,
        api_key_required=bool(key_required),
        stage=stringify(stage) or "Prod",
    )
