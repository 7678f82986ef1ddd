"""template.yaml: the security and wiring properties that matter, checked on the source and on
the SAM transform's output (cfn-lint no longer runs the transform, so cannot catch its errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

pytestmark = pytest.mark.unit


def _plain(node: Any) -> Any:
    """cfn-lint's decoder returns str/dict subclasses with line numbers; tests want plain data."""
    return json.loads(json.dumps(node))


def _load() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert not matches, [str(m) for m in matches]
    assert template is not None
    return _plain(template)


TPL = _load()
RES = TPL["Resources"]


def props(logical_id: str) -> dict[str, Any]:
    return RES[logical_id]["Properties"]


def statements(function: str) -> list[dict[str, Any]]:
    policies = props(function)["Policies"]
    # Inline documents only: a named or SAM-template policy would hide what is granted.
    assert all(isinstance(p, dict) and "Statement" in p for p in policies), policies
    return [s for p in policies for s in p["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def arn(resource: Any) -> str:
    """An ARN as written in the template: '${ModelBucket.Arn}/models/*' and the like."""
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    if "Fn::GetAtt" in resource:
        att = resource["Fn::GetAtt"]
        return "${" + (att if isinstance(att, str) else ".".join(att)) + "}"
    raise AssertionError(f"unexpected resource {resource!r}")


def grants(function: str) -> dict[str, set[str]]:
    """action -> resources, for the function's Allow statements."""
    out: dict[str, set[str]] = {}
    for st in statements(function):
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            out.setdefault(action, set()).update(arn(r) for r in as_list(st["Resource"]))
    return out


def list_prefixes(function: str) -> set[str]:
    found: set[str] = set()
    for st in statements(function):
        if "s3:ListBucket" in as_list(st["Action"]):
            condition = st.get("Condition", {}).get("StringLike", {})
            found.update(as_list(condition.get("s3:prefix", "*")))
    return found


def translate(**parameters: str) -> dict[str, Any]:
    """Run the SAM transform locally (no AWS calls: inline policies need no managed-policy map)."""
    from samtranslator.translator.transform import transform

    template = _plain(TPL)
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/code.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            raise AssertionError("the template should not need AWS managed policy names")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the transform wants a region, nothing else
        return dict(transform(template, parameters, NoManagedPolicies()))


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return translate()


# --- storage -----------------------------------------------------------------------------------


def test_bucket_is_versioned_encrypted_and_private() -> None:
    bucket = props("ModelBucket")
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    rules = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules
    assert all(
        r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms") for r in rules
    )
    block = bucket["PublicAccessBlockConfiguration"]
    flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    assert {flag: block.get(flag) for flag in flags} == dict.fromkeys(flags, True)
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"]


def test_bucket_policy_denies_plain_http() -> None:
    policy = props("ModelBucketPolicy")
    assert policy["Bucket"] == {"Ref": "ModelBucket"}
    denies = [
        st
        for st in policy["PolicyDocument"]["Statement"]
        if st["Effect"] == "Deny"
        and st.get("Principal") in ("*", {"AWS": "*"})
        and "s3:*" in as_list(st["Action"])
        and str(st["Condition"]["Bool"]["aws:SecureTransport"]).lower() == "false"
    ]
    assert len(denies) == 1
    assert {arn(r) for r in as_list(denies[0]["Resource"])} == {
        "${ModelBucket.Arn}",
        "${ModelBucket.Arn}/*",
    }


# --- least privilege ---------------------------------------------------------------------------


def test_predict_can_only_read_models() -> None:
    assert grants("PredictFunction") == {
        "s3:GetObject": {"${ModelBucket.Arn}/models/*"},
        "s3:ListBucket": {"${ModelBucket.Arn}"},
    }
    assert list_prefixes("PredictFunction") == {"models/*"}


def test_retrain_reads_datasets_and_writes_only_models() -> None:
    assert grants("RetrainFunction") == {
        "s3:GetObject": {"${ModelBucket.Arn}/datasets/*", "${ModelBucket.Arn}/models/*"},
        "s3:PutObject": {"${ModelBucket.Arn}/models/*"},
        "s3:ListBucket": {"${ModelBucket.Arn}"},
    }
    # Unconditioned on purpose (404 vs 403 for a missing alias); the bucket is datasets/ + models/.
    assert list_prefixes("RetrainFunction") == {"*"}


def test_transform_adds_no_other_s3_or_wildcard_grants(translated: dict[str, Any]) -> None:
    for role in ("PredictFunctionRole", "RetrainFunctionRole"):
        properties = translated["Resources"][role]["Properties"]
        for policy in properties.get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = as_list(st["Action"])
                assert "*" not in actions and "s3:*" not in actions, (role, st)
                assert "*" not in as_list(st["Resource"]), (role, st)


# --- API ---------------------------------------------------------------------------------------


def api_events() -> dict[tuple[str, str], dict[str, Any]]:
    events = props("PredictFunction")["Events"].values()
    return {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"]): e["Properties"]
        for e in events
        if e["Type"] == "Api"
    }


def test_routes_and_which_need_an_api_key() -> None:
    events = api_events()
    assert props("Api")["Auth"]["ApiKeyRequired"] is True  # new routes are keyed by default
    needs_key = {route: e["Auth"]["ApiKeyRequired"] for route, e in events.items()}
    assert needs_key == {
        ("POST", "/predict"): True,
        ("GET", "/model"): True,
        ("GET", "/health"): False,
        ("GET", "/openapi.json"): False,
        ("GET", "/swagger"): False,
    }
    assert all(e["RestApiId"] == {"Ref": "Api"} for e in events.values())


def test_generated_api_enforces_the_keys(translated: dict[str, Any]) -> None:
    paths = translated["Resources"]["Api"]["Properties"]["Body"]["paths"]
    keyed = {
        (method.upper(), path)
        for path, methods in paths.items()
        for method, op in methods.items()
        if {"api_key": []} in op.get("security", [])
    }
    assert keyed == {("POST", "/predict"), ("GET", "/model")}


def test_usage_plan_throttles_and_caps_per_day(translated: dict[str, Any]) -> None:
    plan = props("Api")["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert plan["Throttle"] == {
        "RateLimit": {"Ref": "ThrottleRateLimit"},
        "BurstLimit": {"Ref": "ThrottleBurstLimit"},
    }
    assert plan["Quota"] == {"Limit": {"Ref": "QuotaLimit"}, "Period": "DAY"}
    resources = translated["Resources"]
    assert resources["ApiUsagePlan"]["Type"] == "AWS::ApiGateway::UsagePlan"
    # The ApiKeyId output refers to a resource only the transform creates.
    assert TPL["Outputs"]["ApiKeyId"]["Value"] == {"Ref": "ApiApiKey"}
    assert resources["ApiApiKey"]["Type"] == "AWS::ApiGateway::ApiKey"


# --- functions and layer -----------------------------------------------------------------------


@pytest.mark.parametrize("function", ["PredictFunction", "RetrainFunction"])
def test_functions_run_python312_on_the_layer(function: str) -> None:
    fn = props(function)
    assert fn["Runtime"] == "python3.12"
    assert fn["Layers"] == [{"Ref": "MLLayer"}]
    assert fn["Tracing"] == "Active"
    assert RES[function]["Metadata"]["BuildMethod"] == "makefile"
    assert (ROOT / fn["CodeUri"] / "Makefile").is_file()


def test_layer_is_built_by_its_makefile_for_python312() -> None:
    layer = props("MLLayer")
    assert layer["ContentUri"] == "layers/ml"
    assert layer["CompatibleRuntimes"] == ["python3.12"]
    assert RES["MLLayer"]["Metadata"]["BuildMethod"] == "makefile"
    assert "build-MLLayer:" in (ROOT / "layers/ml/Makefile").read_text()


def test_retrain_runs_alone_on_a_schedule_and_failures_are_kept() -> None:
    fn = props("RetrainFunction")
    assert fn["ReservedConcurrentExecutions"] == 1
    schedules = [e["Properties"] for e in fn["Events"].values() if e["Type"] == "Schedule"]
    assert [s["Schedule"] for s in schedules] == [{"Ref": "RetrainSchedule"}]
    on_failure = fn["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["RetrainDeadLetterQueue", "Arn"]},
    }
    assert props("RetrainDeadLetterQueue")["SqsManagedSseEnabled"] is True


def test_alarms_watch_retrain_errors_and_the_dead_letter_queue() -> None:
    alarms = [r["Properties"] for r in RES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {
        (a["Namespace"], a["MetricName"], json.dumps(a["Dimensions"][0]["Value"]))
        for a in alarms
        if a["ComparisonOperator"] == "GreaterThanThreshold" and a["Threshold"] == 0
    }
    assert ("AWS/Lambda", "Errors", '{"Ref": "RetrainFunction"}') in watched
    dlq = '{"Fn::GetAtt": ["RetrainDeadLetterQueue", "QueueName"]}'
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq) in watched


@pytest.mark.parametrize("snapstart", ["true", "false"])
def test_transform_accepts_both_snapstart_settings(snapstart: str) -> None:
    resources = translate(EnableSnapStart=snapstart)["Resources"]
    function = resources["PredictFunction"]["Properties"]
    assert function["SnapStart"]["Fn::If"][0] == "SnapStartEnabled"
    aliases = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Alias"]
    assert [a["Properties"]["Name"] for a in aliases] == ["live"]


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    assert cfn_lint.exists(), f"cfn-lint not installed next to {sys.executable}"
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
