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
    """Every statement, a conditional one (Fn::If, else AWS::NoValue) included."""
    policies = props(function)["Policies"]
    # Inline documents only: a named or SAM-template policy would hide what is granted.
    assert all(isinstance(p, dict) and "Statement" in p for p in policies), policies
    return [conditional(s)[1] for p in policies for s in p["Statement"]]


def conditional(statement: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(the condition a statement is granted under or None, the statement)."""
    if "Fn::If" not in statement:
        return None, statement
    condition, granted, otherwise = statement["Fn::If"]
    assert otherwise == {"Ref": "AWS::NoValue"}, otherwise
    return condition, granted


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def arn(resource: Any) -> str:
    """An ARN as written in the template: '${ModelBucket.Arn}/models/*' and the like."""
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    if "Ref" in resource:
        return "${" + resource["Ref"] + "}"
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
            found.update(arn(prefix) for prefix in as_list(condition.get("s3:prefix", "*")))
    return found


def translate(**parameters: str) -> dict[str, Any]:
    """Run the SAM transform locally (no AWS calls: inline policies need no managed-policy map)."""
    from samtranslator.translator.transform import transform

    template = _plain(TPL)
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/code.zip"
        if "DefinitionUri" in resource.get("Properties", {}):  # as `sam deploy` inlines it
            path = ROOT / resource["Properties"].pop("DefinitionUri")
            resource["Properties"]["Definition"] = json.loads(path.read_text())

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


@pytest.mark.parametrize("function", ["PredictFunction", "ApiDocsFunction"])
def test_serving_functions_only_read_their_models_objects(function: str) -> None:
    capture = {  # PredictFunction only: its capture stream, and the capture hash key
        "firehose:PutRecord": {"${CaptureStream.Arn}"},
        "firehose:PutRecordBatch": {"${CaptureStream.Arn}"},
        "secretsmanager:GetSecretValue": {"${CaptureHashKey}"},
    }
    assert grants(function) == {
        "s3:GetObject": {"${ModelBucket.Arn}/models/${ModelName}/*"},
        "s3:ListBucket": {"${ModelBucket.Arn}"},
        "kms:GetPublicKey": {"${ModelSigningKey.Arn}"},
        **(capture if function == "PredictFunction" else {}),
    }
    assert list_prefixes(function) == {"models/${ModelName}/*"}


def test_the_capture_hash_key_is_read_only_when_it_exists() -> None:
    # the secret's own condition, on the one statement that names it: no grant on a pattern
    (secret,) = [
        conditional(s)
        for p in props("PredictFunction")["Policies"]
        for s in p["Statement"]
        if "secretsmanager:GetSecretValue" in as_list(conditional(s)[1]["Action"])
    ]
    assert secret[0] == RES["CaptureHashKey"]["Condition"] == "CaptureHashing"
    assert secret[1]["Resource"] == {"Ref": "CaptureHashKey"}


def test_the_capture_stream_writes_only_under_capture_and_is_read_as_the_monitor_lists() -> None:
    stream = props("CaptureStream")
    assert stream["DeliveryStreamType"] == "DirectPut"
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    s3 = stream["ExtendedS3DestinationConfiguration"]
    assert arn(s3["BucketARN"]) == "${ModelBucket.Arn}"
    # the layout sklambda.monitor.capture_day_prefixes lists; errors where no monitor reads
    assert arn(s3["Prefix"]).startswith("capture/${ModelName}/year=!{timestamp:yyyy}/month=")
    assert arn(s3["ErrorOutputPrefix"]).startswith("capture/_errors/${ModelName}/")
    assert s3["BufferingHints"]["IntervalInSeconds"] <= 900
    (policy,) = props("CaptureStreamRole")["Policies"]
    writes = {
        action: {arn(r) for r in as_list(st["Resource"])}
        for st in policy["PolicyDocument"]["Statement"]
        for action in as_list(st["Action"])
    }
    # its model's prefixes only (not every model's capture/), the two the stream writes under
    objects = {
        "${ModelBucket.Arn}/capture/${ModelName}/*",
        "${ModelBucket.Arn}/capture/_errors/${ModelName}/*",
    }
    for prefix in (s3["Prefix"], s3["ErrorOutputPrefix"]):
        written = "${ModelBucket.Arn}/" + arn(prefix)
        assert any(written.startswith(o.removesuffix("*")) for o in objects), written
    assert writes == {
        "s3:PutObject": objects,
        "s3:AbortMultipartUpload": objects,
        "s3:GetBucketLocation": {"${ModelBucket.Arn}"},
        "s3:ListBucketMultipartUploads": {"${ModelBucket.Arn}"},
    }
    (rule,) = [
        r
        for r in props("ModelBucket")["LifecycleConfiguration"]["Rules"]
        if r.get("Prefix") == "capture/"
    ]
    assert rule["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}


def test_retrain_reads_its_dataset_and_writes_only_versions_aliases_and_runs() -> None:
    model = "${ModelBucket.Arn}/models/${ModelName}"
    assert grants("RetrainFunction") == {
        "s3:GetObject": {"${ModelBucket.Arn}/datasets/${ModelName}/*", f"{model}/*"},
        "s3:PutObject": {f"{model}/versions/*", f"{model}/aliases/*", f"{model}/runs/*"},
        "s3:ListBucket": {"${ModelBucket.Arn}"},
        "kms:Sign": {"${ModelSigningKey.Arn}"},
        "kms:GetPublicKey": {"${ModelSigningKey.Arn}"},
    }
    # Unconditioned on purpose (404 vs 403 for a missing alias): key names only, no contents.
    assert list_prefixes("RetrainFunction") == {"*"}


def test_monitor_reads_capture_labels_and_models_and_writes_only_reports() -> None:
    bucket = "${ModelBucket.Arn}"
    assert grants("MonitorFunction") == {
        "s3:GetObject": {
            f"{bucket}/capture/${{ModelName}}/*",
            f"{bucket}/labels/${{ModelName}}/*",
            f"{bucket}/models/${{ModelName}}/*",
            f"{bucket}/reports/${{ModelName}}/monitor-cursor.json",
        },
        "s3:PutObject": {f"{bucket}/reports/${{ModelName}}/*"},
        "s3:ListBucket": {bucket},
    }
    # Unconditioned as for retrain: the first run's missing cursor must be a 404, not a 403.
    assert list_prefixes("MonitorFunction") == {"*"}


def test_monitor_runs_alone_on_its_own_schedule_and_alarms_on_drift() -> None:
    fn = props("MonitorFunction")
    assert fn["ReservedConcurrentExecutions"] == 1  # one cursor, one reader
    schedules = [e["Properties"] for e in fn["Events"].values() if e["Type"] == "Schedule"]
    assert [s["Schedule"] for s in schedules] == [{"Ref": "MonitorSchedule"}]
    env = fn["Environment"]["Variables"]
    assert env["DRIFT_THRESHOLD"] == {"Ref": "DriftThreshold"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "monitor"
    alarm = props("DriftAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        env["POWERTOOLS_METRICS_NAMESPACE"],
        "MaxFeatureDrift",
    )
    assert alarm["Threshold"] == {"Ref": "DriftThreshold"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "model": {"Ref": "ModelName"},
        "service": "monitor",
    }


def test_only_the_retrain_role_may_sign(translated: dict[str, Any]) -> None:
    signers = {
        logical_id
        for logical_id, resource in translated["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        for policy in resource["Properties"].get("Policies", [])
        for st in (conditional(s)[1] for s in policy["PolicyDocument"]["Statement"])
        if {"kms:Sign", "kms:*", "*"} & set(as_list(st["Action"]))
    }
    assert signers == {"RetrainFunctionRole"}


def test_transform_adds_no_other_s3_or_wildcard_grants(translated: dict[str, Any]) -> None:
    roles = ("PredictFunctionRole", "RetrainFunctionRole", "ApiDocsFunctionRole")
    for role in (*roles, "MonitorFunctionRole"):
        properties = translated["Resources"][role]["Properties"]
        for policy in properties.get("Policies", []):
            for st in (conditional(s)[1] for s in policy["PolicyDocument"]["Statement"]):
                actions = as_list(st["Action"])
                assert "*" not in actions and "s3:*" not in actions, (role, st)
                assert "*" not in as_list(st["Resource"]), (role, st)


# --- API ---------------------------------------------------------------------------------------


API_FUNCTIONS = ("PredictFunction", "ApiDocsFunction")
DOCS = {("GET", "/openapi.json"), ("GET", "/swagger")}


def api_events(*functions: str) -> dict[tuple[str, str], dict[str, Any]]:
    events = [e for f in functions or API_FUNCTIONS for e in props(f)["Events"].values()]
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
        ("POST", "/invocations"): True,
        ("GET", "/model"): True,
        ("GET", "/health"): False,
        ("GET", "/ping"): False,
        ("GET", "/v2/health/ready"): False,
        ("GET", "/v2/models/{name}"): True,
        ("POST", "/v2/models/{name}/infer"): True,
        ("GET", "/openapi.json"): False,
        ("GET", "/swagger"): False,
    }
    assert all(e["RestApiId"] == {"Ref": "Api"} for e in events.values())


def when_true(node: Any) -> Any:
    """What an `Fn::If` gives when its condition holds (SAM wraps conditional routes in them)."""
    while isinstance(node, dict) and set(node) == {"Fn::If"}:
        node = node["Fn::If"][1]
    return node


def test_generated_api_enforces_the_keys(translated: dict[str, Any]) -> None:
    paths = translated["Resources"]["Api"]["Properties"]["Body"]["paths"]
    keyed = {
        (method.upper(), path)
        for path, methods in paths.items()
        for method, op in when_true(methods).items()
        if {"api_key": []} in when_true(op).get("security", [])
    }
    assert keyed == {
        ("POST", "/predict"),
        ("POST", "/invocations"),
        ("GET", "/model"),
        ("GET", "/v2/models/{name}"),
        ("POST", "/v2/models/{name}/infer"),
    }
    # The docs routes exist only under the ApiDocsEnabled condition (SAM wraps them in Fn::If).
    for _, path in DOCS:
        assert paths[path]["Fn::If"][0] == "ApiDocsEnabled"


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


@pytest.mark.parametrize("function", ["PredictFunction", "RetrainFunction", "BatchPredictFunction"])
def test_functions_run_python312_on_the_layer(function: str) -> None:
    fn = props(function)
    assert fn["Runtime"] == "python3.12"
    assert fn["Layers"] == [{"Ref": "MLLayer"}]
    assert fn["Tracing"] == "Active"
    assert RES[function]["Metadata"]["BuildMethod"] == "makefile"
    assert (ROOT / fn["CodeUri"] / "Makefile").is_file()


def test_monitor_function_runs_python312_on_the_layer() -> None:
    test_functions_run_python312_on_the_layer("MonitorFunction")


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
    assert ("AWS/Lambda", "Errors", '{"Ref": "MonitorFunction"}') in watched
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


# --- open routes, logs and the audit trail -----------------------------------------------------


def stage(translated: dict[str, Any]) -> dict[str, Any]:
    (found,) = [
        r["Properties"]
        for r in translated["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Stage"
    ]
    return found


def test_api_access_logs_are_json_lines_with_the_api_key_id(translated: dict[str, Any]) -> None:
    setting = props("Api")["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    line = json.loads(setting["Format"])  # one JSON object per request
    assert line["apiKeyId"] == "$context.identity.apiKeyId"  # which key: the id, never the key
    assert line["requestId"] == "$context.requestId"
    assert line["status"] == "$context.status"
    assert line["latencyMs"] == "$context.responseLatency"
    assert props("ApiAccessLogGroup")["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert stage(translated)["AccessLogSetting"] == setting
    # API Gateway writes to CloudWatch Logs only through the account's role, set before the API.
    account = props("ApiGatewayAccount")
    assert account["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    assert RES["Api"]["DependsOn"] == "ApiGatewayAccount"
    role = RES["ApiGatewayCloudWatchRole"]
    assert role["DeletionPolicy"] == "Retain"  # the account setting outlives the stack
    assert [arn(a) for a in role["Properties"]["ManagedPolicyArns"]] == [
        "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    ]


def test_open_routes_have_a_stage_level_throttle(translated: dict[str, Any]) -> None:
    throttled = {}
    for setting in map(when_true, stage(translated)["MethodSettings"]):
        if "ThrottlingRateLimit" in setting:
            throttled[(setting["HttpMethod"], setting["ResourcePath"])] = (
                setting["ThrottlingRateLimit"],
                setting["ThrottlingBurstLimit"],
            )
    limits = ({"Ref": "OpenRouteRateLimit"}, {"Ref": "OpenRouteBurstLimit"})
    open_routes = {route for route, e in api_events().items() if not e["Auth"]["ApiKeyRequired"]}
    # A method setting's path is "/" + the resource path with each "/" written "~1".
    assert {(m, "/" + p.replace("/", "~1")) for m, p in open_routes} == set(throttled)
    assert all(value == limits for value in throttled.values())
    # The docs' settings name routes that exist only when the docs do.
    docs = [s for s in props("Api")["MethodSettings"] if isinstance(s, dict) and "Fn::If" in s]
    assert {s["Fn::If"][1]["ResourcePath"] for s in docs} == {"/~1openapi.json", "/~1swagger"}
    assert all(s["Fn::If"][0] == "ApiDocsEnabled" for s in docs)


def test_api_docs_are_a_function_of_their_own_left_out_in_prod() -> None:
    import tomllib

    assert set(api_events("PredictFunction")).isdisjoint(DOCS)
    assert set(api_events("ApiDocsFunction")) == DOCS
    docs = RES["ApiDocsFunction"]
    assert docs["Condition"] == "ApiDocsEnabled"
    assert RES["ApiDocsLogGroup"]["Condition"] == "ApiDocsEnabled"
    assert TPL["Conditions"]["ApiDocsEnabled"] == {"Fn::Equals": [{"Ref": "EnableApiDocs"}, "true"]}
    assert props("ApiDocsFunction")["Handler"] == props("PredictFunction")["Handler"]
    assert "build-ApiDocsFunction" in (ROOT / "functions/predict/Makefile").read_text()
    # A flip of the parameter changes no template text SAM hashes: redeploy every time.
    assert props("Api")["AlwaysDeploy"] is True
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = {
        env: dict(
            pair.split("=", 1)
            for pair in config[env]["deploy"]["parameters"]["parameter_overrides"].split()
        )
        for env in ("default", "dev", "prod")
    }
    assert {env: o["EnableApiDocs"] for env, o in overrides.items()} == {
        "default": "true",
        "dev": "true",
        "prod": "false",
    }


def test_docs_routes_and_their_function_go_together(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    assert resources["ApiDocsFunction"]["Condition"] == "ApiDocsEnabled"
    permissions = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"]["FunctionName"] == {"Ref": "ApiDocsFunction"}
    ]
    # HttpApiDocs (ApiType HTTP) is ApiDocsEnabled and more.
    assert permissions and all(
        p["Condition"] in ("ApiDocsEnabled", "HttpApiDocs") for p in permissions
    )


def test_predict_reserved_concurrency_is_a_parameter_off_by_default() -> None:
    assert props("PredictFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "PredictConcurrencyReserved",
            {"Ref": "PredictReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert TPL["Parameters"]["PredictReservedConcurrency"]["Default"] == -1
    assert TPL["Conditions"]["PredictConcurrencyReserved"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PredictReservedConcurrency"}, "-1"]}]
    }


def test_model_bucket_access_is_logged_to_a_private_expiring_bucket() -> None:
    logging = props("ModelBucket")["LoggingConfiguration"]
    assert logging == {
        "DestinationBucketName": {"Ref": "AccessLogBucket"},
        "LogFilePrefix": "model-bucket/",
    }
    logs = props("AccessLogBucket")
    encryption = logs["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert [r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in encryption] == ["AES256"]
    assert all(logs["PublicAccessBlockConfiguration"].values())
    assert len(logs["PublicAccessBlockConfiguration"]) == 4
    assert logs["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (rule,) = logs["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == {"Ref": "AuditLogRetentionDays"}
    policy = props("AccessLogBucketPolicy")
    assert policy["Bucket"] == {"Ref": "AccessLogBucket"}
    statements = {st["Sid"]: st for st in policy["PolicyDocument"]["Statement"]}
    tls = statements["DenyInsecureTransport"]
    assert tls["Effect"] == "Deny" and tls["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    assert {arn(r) for r in tls["Resource"]} == {
        "${AccessLogBucket.Arn}",
        "${AccessLogBucket.Arn}/*",
    }
    delivery = statements["AllowModelBucketAccessLogs"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Action"] == "s3:PutObject"
    assert arn(delivery["Resource"]) == "${AccessLogBucket.Arn}/model-bucket/*"
    assert arn(delivery["Condition"]["ArnLike"]["aws:SourceArn"]) == "${ModelBucket.Arn}"
    assert delivery["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# --- signed, write-once versions ----------------------------------------------------------------


def test_the_signing_key_is_asymmetric_and_managed_by_the_account() -> None:
    key = RES["ModelSigningKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert (key["Properties"]["KeySpec"], key["Properties"]["KeyUsage"]) == (
        "ECC_NIST_P256",
        "SIGN_VERIFY",
    )
    assert key["DeletionPolicy"] == "Retain"  # old signatures must stay checkable
    (admin,) = key["Properties"]["KeyPolicy"]["Statement"]
    assert admin["Effect"] == "Allow" and admin["Action"] == "kms:*"
    assert arn(admin["Principal"]["AWS"]) == "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
    assert TPL["Outputs"]["ModelSigningKeyId"]["Value"] == {"Ref": "ModelSigningKey"}


def test_versions_are_write_once_for_everyone() -> None:
    statements = {st["Sid"]: st for st in props("ModelBucketPolicy")["PolicyDocument"]["Statement"]}
    put = statements["DenyUnconditionalVersionWrites"]
    assert (put["Effect"], put["Principal"], put["Action"]) == ("Deny", "*", "s3:PutObject")
    assert arn(put["Resource"]) == "${ModelBucket.Arn}/models/*/versions/*"
    # Denied unless the request carries If-None-Match (the store sends "*": only if absent).
    assert put["Condition"] == {"Null": {"s3:if-none-match": "true"}}
    delete = statements["DenyVersionDeletes"]
    assert (delete["Effect"], delete["Principal"]) == ("Deny", "*")
    assert set(delete["Action"]) == {"s3:DeleteObject", "s3:DeleteObjectVersion"}
    assert arn(delete["Resource"]) == "${ModelBucket.Arn}/models/*/versions/*"


# --- checkov -------------------------------------------------------------------------------------

# Every check skipped in template.yaml, by resource. A new skip needs a reason in the template
# (Metadata: checkov: skip: [{id, comment}]) and a line here.
CHECKOV_SKIPS = {
    "AccessLogBucket": {"CKV_AWS_18"},  # the log bucket does not log itself
    "Api": {"CKV_AWS_120"},  # no cache cluster
    "ApiAccessLogGroup": {"CKV_AWS_158"},  # CloudWatch Logs' own encryption
    "PredictLogGroup": {"CKV_AWS_158"},
    "ApiDocsLogGroup": {"CKV_AWS_158"},
    "RetrainLogGroup": {"CKV_AWS_158"},
    "BatchPredictLogGroup": {"CKV_AWS_158"},
    "BatchTransformLogGroup": {"CKV_AWS_158"},
    # invoked synchronously by Step Functions, which retries and records failures
    "BatchPredictFunction": {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    # synchronous invocation (no DLQ) / no VPC / no secrets in the environment
    "PredictFunction": {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "ApiDocsFunction": {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    # the OnFailure destination and SSE-SQS: checkov's false positives
    "RetrainFunction": {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "RetrainDeadLetterQueue": {"CKV_AWS_27"},
    # scheduled: a failed run is read again by the next (the cursor moves only after a report)
    "MonitorLogGroup": {"CKV_AWS_158"},
    "MonitorFunction": {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "PreTrafficHookFunction": {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "PreTrafficHookLogGroup": {"CKV_AWS_158"},
    "CaptureHashKey": {"CKV_AWS_149"},  # Secrets Manager's own key; one reader
}


def test_every_checkov_skip_is_known_and_gives_its_reason() -> None:
    found: dict[str, set[str]] = {}
    for logical_id, resource in RES.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "").split()) >= 8, (logical_id, skip)
            found.setdefault(logical_id, set()).add(skip["id"])
    assert found == CHECKOV_SKIPS
    assert "checkov" in (ROOT / ".ci/run").read_text()


def test_prod_requires_signed_models_and_never_loads_a_pickle() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    prod = dict(
        pair.split("=", 1)
        for pair in config["prod"]["deploy"]["parameters"]["parameter_overrides"].split()
    )
    assert (prod["RequireSignedModels"], prod["ModelFormat"]) == ("true", "npz")
    assert "npz" in TPL["Parameters"]["ModelFormat"]["AllowedValues"]
    assert TPL["Parameters"]["RequireSignedModels"]["Default"] == "false"  # dev: local, unsigned


# --- batch transform ---------------------------------------------------------------------------


ASL = json.loads((ROOT / "statemachines/batch_transform.asl.json").read_text())
STATE_MACHINE = "BatchTransformStateMachine"
MACHINE_ARN = (
    "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:"
    "${AWS::StackName}-batch-transform"
)
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def test_batch_function_reads_its_model_and_writes_only_job_outputs() -> None:
    batch = "${ModelBucket.Arn}/batch"
    assert grants("BatchPredictFunction") == {
        "s3:GetObject": {"${ModelBucket.Arn}/models/${ModelName}/*", f"{batch}/*"},
        "s3:PutObject": {
            f"{batch}/*/out/*",
            f"{batch}/*/rejected/*",
            f"{batch}/*/_SUCCESS.json",
            f"{batch}/*/_FAILED.json",
        },
        "s3:ListBucket": {"${ModelBucket.Arn}"},
        "kms:GetPublicKey": {"${ModelSigningKey.Arn}"},
    }
    assert list_prefixes("BatchPredictFunction") == {"models/${ModelName}/*", "batch/*"}


def test_state_machine_reads_batch_in_writes_results_and_invokes_only_its_function() -> None:
    assert grants(STATE_MACHINE) == {
        "lambda:InvokeFunction": {"${BatchPredictFunction.Arn}", "${BatchPredictFunction.Arn}:*"},
        "s3:GetObject": {"${ModelBucket.Arn}/batch/in/*"},
        "s3:PutObject": {"${ModelBucket.Arn}/batch/*/results/*"},
        "s3:AbortMultipartUpload": {"${ModelBucket.Arn}/batch/*/results/*"},
        "s3:ListMultipartUploadParts": {"${ModelBucket.Arn}/batch/*/results/*"},
        "states:StartExecution": {MACHINE_ARN},
        "states:DescribeExecution": {MACHINE_ARN.replace(":stateMachine:", ":execution:") + "/*"},
        "states:StopExecution": {MACHINE_ARN.replace(":stateMachine:", ":execution:") + "/*"},
        **{action: {"*"} for action in LOG_DELIVERY},  # these actions take no resource ARN
    }
    machine = props(STATE_MACHINE)
    assert arn(machine["Name"]) == "${AWS::StackName}-batch-transform"  # the ARN above
    assert machine["DefinitionSubstitutions"] == {
        "BatchPredictFunctionArn": {"Fn::GetAtt": ["BatchPredictFunction", "Arn"]}
    }


def test_state_machine_role_after_the_transform_has_no_other_grants(
    translated: dict[str, Any],
) -> None:
    role = translated["Resources"]["BatchTransformStateMachineRole"]["Properties"]
    for policy in role.get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            actions = set(as_list(st["Action"]))
            assert "*" not in actions and "s3:*" not in actions, st
            if "*" in as_list(st["Resource"]):
                assert actions <= LOG_DELIVERY | {
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                }, st


def test_batch_parameters_default_to_no_tolerated_failures_and_no_upload_trigger() -> None:
    params = TPL["Parameters"]
    assert params["BatchToleratedFailurePercentage"]["Default"] == 0
    assert params["BatchOnUpload"]["Default"] == "false"
    env = props("BatchPredictFunction")["Environment"]["Variables"]
    assert env["BATCH_TOLERATED_FAILURE_PERCENTAGE"] == {"Ref": "BatchToleratedFailurePercentage"}
    rule = props(STATE_MACHINE)["Events"]["InputUploaded"]["Properties"]
    assert rule["State"] == {"Fn::If": ["BatchUploadTriggerEnabled", "ENABLED", "DISABLED"]}
    assert rule["Pattern"]["detail"]["object"]["key"] == [{"prefix": "batch/in/"}]


def _maps() -> list[dict[str, Any]]:
    return [s for s in ASL["States"].values() if s["Type"] == "Map"]


def test_definition_is_a_distributed_map_over_csv_and_json_lines() -> None:
    readers = {m["ItemReader"]["ReaderConfig"]["InputType"] for m in _maps()}
    assert readers == {"CSV", "JSONL"}
    for m in _maps():
        assert m["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
        # under the 256 KiB state payload, with room for BatchInput and the envelope
        assert m["ItemBatcher"]["MaxInputBytesPerBatch"] <= 200_000
        assert m["ItemSelector"] == {"index.$": "$$.Map.Item.Index", "row.$": "$$.Map.Item.Value"}
        assert m["ItemBatcher"]["BatchInput"]["version.$"] == "$.job.version"  # pinned once
        assert m["ToleratedFailurePercentagePath"] == "$.job.tolerated_failure_percentage"
        assert m["ResultWriter"]["Parameters"]["Prefix.$"] == "$.job.results_prefix"
        task = m["ItemProcessor"]["States"][m["ItemProcessor"]["StartAt"]]
        assert task["Resource"] == "${BatchPredictFunctionArn}"
        assert "Lambda.TooManyRequestsException" in task["Retry"][0]["ErrorEquals"]
        assert m["Catch"][0]["Next"] == "RecordFailure" and m["Next"] == "RecordSuccess"


def test_every_task_invokes_only_the_batch_function() -> None:
    def tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
        found = [s for s in states.values() if s["Type"] == "Task"]
        for s in states.values():
            if s["Type"] == "Map":
                found += tasks(s["ItemProcessor"]["States"])
        return found

    assert {t["Resource"] for t in tasks(ASL["States"])} == {"${BatchPredictFunctionArn}"}
    assert ASL["StartAt"] == "Resolve"


def _lint_definition(definition: dict[str, Any], tmp_path: Path) -> str:
    """cfn-lint's state machine checks (E3601) on the definition inlined in a template: cfn-lint
    does not read a DefinitionUri file, so the template alone never gets them."""
    resource = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "RoleArn": "arn:aws:iam::123456789012:role/batch",
            "Definition": definition,
            "DefinitionSubstitutions": {
                "BatchPredictFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"
            },
        },
    }
    path = tmp_path / "machine.json"
    path.write_text(json.dumps({"Resources": {"Machine": resource}}))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.stdout + result.stderr


def test_definition_passes_cfn_lints_state_machine_checks(tmp_path: Path) -> None:
    assert _lint_definition(ASL, tmp_path) == ""
    broken = json.loads(json.dumps(ASL).replace('"ItemBatcher"', '"ItemBatch"'))
    assert "E3601" in _lint_definition(broken, tmp_path)  # the check is live
