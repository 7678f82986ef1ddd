"""tools/local/template.py: a SAM template read as `sam local` reads it (small templates)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.local.template import (
    DEFAULT_BUCKET,
    Route,
    TemplateError,
    load_env_vars,
    load_template,
)

pytestmark = [pytest.mark.unit, pytest.mark.tooling]  # tests of tools/, not the product

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  ModelName: {Type: String, Default: house-prices}
  Memory: {Type: Number, Default: 512}
  Empty: {Type: String, Default: ""}
Globals:
  Function:
    Timeout: 10
    Runtime: python3.12
    Environment:
      Variables:
        FROM_GLOBALS: "yes"
        OVERRIDDEN: global
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  Queue:
    Type: AWS::SQS::Queue
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/ml
  PackagedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/packaged
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: !Ref Stage
      Auth:
        ApiKeyRequired: true
  PredictFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/predict
      Handler: app.handler
      MemorySize: !Ref Memory
      Layers: [!Ref Layer, !Ref PackagedLayer, "arn:aws:lambda:us-east-1:1:layer:x:1"]
      Environment:
        Variables:
          MODEL_BUCKET: !Ref Bucket
          MODEL_NAME: !Ref ModelName
          MODEL_VERSION: !Ref Empty
          QUEUE: !Ref Queue
          ARN: !GetAtt Bucket.Arn
          PREFIX: !Sub "models/${ModelName}/${AWS::Region}"
          UNRESOLVED_SUB: !Sub "${Bucket.Arn}/models"
          FLAG: true
          COUNT: 3
          OVERRIDDEN: function
      Events:
        Predict:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /predict, Method: post}
        Health:
          Type: Api
          Properties:
            RestApiId: !Ref Api
            Path: /health
            Method: get
            Auth: {ApiKeyRequired: false}
        Nightly:
          Type: Schedule
          Properties: {Schedule: rate(1 day)}
  OtherFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/other
      Handler: other.handler
      Timeout: 900
      Environment:
        Variables:
          MODEL_NAME: !Ref ModelName
      Events:
        Anything:
          Type: Api
          Properties: {Path: /other, Method: any}
"""


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    (tmp_path / "layers" / "packaged" / "python").mkdir(parents=True)
    return path


def test_functions_with_globals_parameters_and_layers(template: Path) -> None:
    app = load_template(template)
    root = template.parent
    predict = app.functions["PredictFunction"]
    assert predict.handler == "app.handler"
    assert predict.code_dir == root / "functions" / "predict"
    assert predict.runtime == "python3.12"  # from Globals
    assert predict.timeout == 10  # from Globals
    assert predict.memory_size == 512  # !Ref to a Number parameter
    # layers/ml holds the package itself; a packaged layer keeps it in python/; an ARN is skipped
    assert predict.layer_dirs == (root / "layers" / "ml", root / "layers" / "packaged" / "python")
    assert any("arn:aws:lambda" in warning for warning in app.warnings)
    other = app.functions["OtherFunction"]
    assert (other.timeout, other.memory_size, other.layer_dirs) == (900, 128, ())


# What SAM CLI's IntrinsicResolver makes of `!GetAtt Bucket.Arn` once `!Ref Bucket` is the local
# bucket (as with `sam local --parameter-overrides Bucket=local-models`).
SAM_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{DEFAULT_BUCKET}"


def test_environment_values_are_resolved_like_sam_local(template: Path) -> None:
    env = load_template(template).functions["PredictFunction"].environment
    assert env == {
        "FROM_GLOBALS": "yes",
        "OVERRIDDEN": "function",
        "MODEL_BUCKET": DEFAULT_BUCKET,  # !Ref to a bucket: the local bucket's name
        "MODEL_NAME": "house-prices",
        "MODEL_VERSION": "",
        "QUEUE": "Queue",  # sam local: !Ref to another resource is its logical id
        "ARN": SAM_ARN,  # sam local: a made-up Lambda ARN, whatever the resource
        "PREFIX": "models/house-prices/us-east-1",
        "UNRESOLVED_SUB": f"{SAM_ARN}/models",
        "FLAG": "true",
        "COUNT": "3",
    }


def test_local_bucket_name_and_parameter_overrides(template: Path) -> None:
    app = load_template(template, bucket="my-local", parameters={"ModelName": "rents"})
    env = app.functions["PredictFunction"].environment
    assert (env["MODEL_BUCKET"], env["MODEL_NAME"]) == ("my-local", "rents")
    assert env["PREFIX"] == "models/rents/us-east-1"


def test_env_vars_file_applies_like_sam_local_invoke(template: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(
        json.dumps(
            {
                "Parameters": {"MODEL_NAME": "everywhere", "OVERRIDDEN": "params"},
                "PredictFunction": {"OVERRIDDEN": "own", "NOT_DECLARED": "x", "COUNT": 7},
            }
        )
    )
    app = load_template(template, env_vars=load_env_vars(env_file))
    predict = app.functions["PredictFunction"].environment
    other = app.functions["OtherFunction"].environment
    assert predict["OVERRIDDEN"] == "own"  # the function's entry beats "Parameters"
    assert predict["MODEL_NAME"] == "everywhere"  # "Parameters" applies to every function
    assert predict["COUNT"] == "7"
    assert other == {"FROM_GLOBALS": "yes", "OVERRIDDEN": "params", "MODEL_NAME": "everywhere"}
    assert "NOT_DECLARED" not in predict  # sam only overrides variables the template declares


def test_shell_environment_sits_between_template_and_env_vars(template: Path) -> None:
    shell = {"MODEL_NAME": "from-shell", "OVERRIDDEN": "from-shell", "UNDECLARED": "x"}
    app = load_template(
        template, env_vars={"PredictFunction": {"OVERRIDDEN": "file"}}, shell_env=shell
    )
    env = app.functions["PredictFunction"].environment
    assert (env["MODEL_NAME"], env["OVERRIDDEN"]) == ("from-shell", "file")
    assert "UNDECLARED" not in env


def test_api_routes(template: Path) -> None:
    routes = load_template(template).routes
    assert routes == [
        Route("POST", "/predict", "PredictFunction", api_key_required=True, stage="dev"),
        Route("GET", "/health", "PredictFunction", api_key_required=False, stage="dev"),
        # no RestApiId: SAM's implicit API, stage "Prod", no key unless asked for
        Route("ANY", "/other", "OtherFunction", api_key_required=False, stage="Prod"),
    ]


def test_globals_api_auth_applies_to_the_implicit_api(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        """
Globals:
  Api:
    Auth: {ApiKeyRequired: true}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: a.b
      Events:
        Get: {Type: Api, Properties: {Path: /x, Method: GET}}
"""
    )
    assert load_template(path).routes[0].api_key_required is True


def test_built_uses_aws_sam_build_when_present(template: Path) -> None:
    build = template.parent / ".aws-sam" / "build"
    (build / "PredictFunction").mkdir(parents=True)
    (build / "Layer" / "python").mkdir(parents=True)
    app = load_template(template, built=True)
    predict = app.functions["PredictFunction"]
    assert predict.code_dir == build / "PredictFunction"
    assert predict.layer_dirs[0] == build / "Layer" / "python"
    # not built: the sources
    assert app.functions["OtherFunction"].code_dir == template.parent / "functions" / "other"
    assert load_template(template).functions["PredictFunction"].code_dir != predict.code_dir


def test_code_in_s3_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: "s3://bucket/code.zip", Handler: a.b}
"""
    )
    with pytest.raises(TemplateError, match="CodeUri"):
        load_template(path)


def test_env_vars_file_must_map_names_to_objects(tmp_path: Path) -> None:
    bad = tmp_path / "env.json"
    bad.write_text(json.dumps({"PredictFunction": "oops"}))
    with pytest.raises(TemplateError):
        load_env_vars(bad)
    assert load_env_vars(None) == {}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(text)
    return path


def test_sam_cli_failures_become_template_errors(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not found"):
        load_template(tmp_path / "missing.yaml")
    with pytest.raises(TemplateError, match="parse"):
        load_template(write(tmp_path, "Resources: [\n"))
    invalid = """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src, Handler: a.b, Events: {E: {Type: Api, Properties: {Path: /x}}}}
"""
    with pytest.raises(TemplateError, match="Method"):  # SAM's own validation
        load_template(write(tmp_path, invalid))


def test_conditions_are_evaluated_and_what_cannot_run_is_refused(tmp_path: Path) -> None:
    conditional = """
Parameters:
  Big: {Type: String, Default: "false"}
Conditions:
  IsBig: !Equals [!Ref Big, "true"]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src, Handler: a.b, MemorySize: !If [IsBig, 2048, 512]}
"""
    path = write(tmp_path, conditional)
    assert load_template(path).functions["Fn"].memory_size == 512
    assert load_template(path, parameters={"Big": "true"}).functions["Fn"].memory_size == 2048
    imported = conditional.replace("!If [IsBig, 2048, 512]", "!ImportValue shared-memory")
    with pytest.raises(TemplateError, match="MemorySize"):
        load_template(write(tmp_path, imported))
    inline = """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {InlineCode: "def h(e, c): pass", Handler: index.h, Runtime: python3.12}
"""
    with pytest.raises(TemplateError, match="CodeUri"):
        load_template(write(tmp_path, inline))


def test_sam_warnings_are_collected_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """
Resources:
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: "s3://bucket/layer.zip"}
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src, Handler: a.b, Layers: [!Ref Layer]}
""",
    )
    app = load_template(path)
    assert app.functions["Fn"].layer_dirs == ()
    assert any("S3 location" in warning for warning in app.warnings)  # SAM CLI's own warning
    assert capsys.readouterr().err == ""


def test_importing_reads_no_sam_code_and_loading_stays_on_the_machine(tmp_path: Path) -> None:
    """The types are cheap to import; a load opens no connection and resolves no host name."""
    root = Path(__file__).resolve().parents[2]
    script = """
import socket, sys
import tools.local.template as template
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"samcli", "samtranslator", "cfnlint"})
assert not heavy, heavy
seen = []
def audit(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo"):
        seen.append((event, args[1] if event != "socket.getaddrinfo" else args[0]))
sys.addaudithook(audit)
app = template.load_template(sys.argv[1])
assert app.functions and app.routes, app
assert not seen, seen
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(root / "template.yaml")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
