"""template.yaml's safe deploys: PredictFunction's DeploymentPreference (a parameter, canary in
prod), the alarms on the version being deployed, and the PreTraffic hook's least privilege."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from tests.unit.test_template import RES, ROOT, TPL, arn, grants, props, translate

pytestmark = pytest.mark.unit

ALARMS = [
    "PredictCanaryErrorsAlarm",
    "PredictCanaryServerErrorsAlarm",
    "PredictCanaryModelLoadFailuresAlarm",
    "PredictCanaryLatencyAlarm",
]
NEW_VERSION = {"Fn::GetAtt": ["PredictFunction", "Version.Version"]}  # as cfn-lint decodes it
HOOK_ROLE_GRANTS = {
    "lambda:InvokeFunction": {"${PredictFunction.Arn}:*"},
    "codedeploy:PutLifecycleEventHookExecutionStatus": {
        "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:"
        "${ServerlessDeploymentApplication}/${PredictFunctionDeploymentGroup}"
    },
}


def overrides(env: str) -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    line = config[env]["deploy"]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in line.split())


def dimensions(alarm: str) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in props(alarm)["Dimensions"]}


def test_predict_deploys_through_codedeploy_with_the_hook_and_the_alarms() -> None:
    preference = props("PredictFunction")["DeploymentPreference"]
    assert preference["Type"] == {"Ref": "DeploymentType"}
    assert preference["Hooks"] == {"PreTraffic": {"Ref": "PreTrafficHookFunction"}}
    assert preference["Alarms"] == [{"Ref": alarm} for alarm in ALARMS]
    assert props("PredictFunction")["AutoPublishAlias"] == "live"


def test_prod_shifts_by_canary_and_dev_all_at_once() -> None:
    parameter = TPL["Parameters"]["DeploymentType"]
    assert parameter["Default"] == "AllAtOnce"
    assert overrides("prod")["DeploymentType"].startswith("Canary")
    assert overrides("dev")["DeploymentType"] == overrides("default")["DeploymentType"]
    assert overrides("dev")["DeploymentType"] == "AllAtOnce"
    for env in ("default", "dev", "prod"):
        assert overrides(env)["DeploymentType"] in parameter["AllowedValues"]


@pytest.mark.parametrize("kind", ["AllAtOnce", "Canary10Percent5Minutes"])
def test_the_transform_makes_a_deployment_group_of_that_kind_with_the_alarms(kind: str) -> None:
    resources = translate(DeploymentType=kind)["Resources"]
    group = resources["PredictFunctionDeploymentGroup"]["Properties"]
    assert group["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": kind}
    assert group["AlarmConfiguration"] == {
        "Enabled": True,
        "Alarms": [{"Name": {"Ref": alarm}} for alarm in ALARMS],
    }
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    (alias,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Alias"]
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == {"Ref": "PreTrafficHookFunction"}
    assert update["DeploymentGroupName"] == {"Ref": "PredictFunctionDeploymentGroup"}
    # SAM's own references, named in the hook's policy and the alarms, exist after the transform.
    assert resources["ServerlessDeploymentApplication"]["Type"] == "AWS::CodeDeploy::Application"
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    for alarm in ALARMS:
        watched = {d["Name"]: d["Value"] for d in resources[alarm]["Properties"]["Dimensions"]}
        assert {"Fn::GetAtt": [version_id, "Version"]} in watched.values(), alarm


@pytest.mark.parametrize("alarm", ALARMS)
def test_each_alarm_watches_only_the_version_being_deployed(alarm: str) -> None:
    alarm_props = props(alarm)
    dims = dimensions(alarm)
    if alarm_props["Namespace"] == "AWS/Lambda":
        assert dims == {
            "FunctionName": {"Ref": "PredictFunction"},
            "Resource": {"Fn::Sub": "${PredictFunction}:live"},
            "ExecutedVersion": NEW_VERSION,
        }
    else:  # the handler's EMF counts (tests/unit/test_canary_metrics.py checks these names)
        assert alarm_props["Namespace"] == "SklambdaModels"
        assert dims == {"service": "predict", "function_version": NEW_VERSION}
        fn = props("PredictFunction")["Environment"]["Variables"]
        assert fn["POWERTOOLS_METRICS_NAMESPACE"] == "SklambdaModels"
        assert fn["POWERTOOLS_SERVICE_NAME"] == "predict"
    assert alarm_props["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm_props["TreatMissingData"] == "notBreaching"  # a quiet canary is not a failure
    assert alarm_props["Period"] == 60


def test_errors_roll_back_when_they_persist_and_latency_on_its_p99() -> None:
    # one transient 503 or one stray error does not roll a deploy back: more than 2 a minute,
    # in 2 of 3 minutes (inside Canary10Percent5Minutes' 5-minute shift)
    for alarm in ALARMS[:2]:
        alarm_props = props(alarm)
        assert (alarm_props["Statistic"], alarm_props["Threshold"]) == ("Sum", 2)
        assert (alarm_props["EvaluationPeriods"], alarm_props["DatapointsToAlarm"]) == (3, 2)
    # a model the new version cannot load is not a client's doing, nor passing: the first one
    loads = props("PredictCanaryModelLoadFailuresAlarm")
    assert (loads["Statistic"], loads["Threshold"], loads["EvaluationPeriods"]) == ("Sum", 0, 1)
    assert [props(a)["MetricName"] for a in ALARMS] == [
        "Errors",
        "ServerErrors",
        "ModelLoadFailures",
        "Duration",
    ]
    latency = props("PredictCanaryLatencyAlarm")
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == {"Ref": "CanaryLatencyP99Ms"}


def test_the_hook_is_named_for_codedeploys_role_and_tests_the_new_version() -> None:
    hook = props("PreTrafficHookFunction")
    assert hook["FunctionName"]["Fn::Sub"].startswith("CodeDeployHook_")
    assert hook["Environment"]["Variables"]["TARGET_FUNCTION_VERSION"] == {
        "Ref": "PredictFunction.Version"
    }
    assert hook["Handler"] == "pre_traffic_handler.lambda_handler"
    assert hook["Layers"] == [{"Ref": "MLLayer"}]
    assert RES["PreTrafficHookFunction"]["Metadata"]["BuildMethod"] == "makefile"
    makefile = (ROOT / hook["CodeUri"] / "Makefile").read_text()
    assert "build-PreTrafficHookFunction:" in makefile and "smoke_events.json" in makefile
    assert "DeploymentPreference" not in hook  # the hook itself is deployed directly
    log_group = props("PreTrafficHookLogGroup")
    assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${PreTrafficHookFunction}"}


def test_the_hook_may_invoke_predict_versions_and_report_to_its_group_only() -> None:
    assert grants("PreTrafficHookFunction") == HOOK_ROLE_GRANTS


def test_the_hooks_role_after_the_transform_has_no_other_grants() -> None:
    role = translate()["Resources"]["PreTrafficHookFunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    found: dict[str, set[str]] = {}
    for st in statements:
        assert st["Effect"] == "Allow"
        found.setdefault(st["Action"], set()).add(arn(st["Resource"]))
    assert found == HOOK_ROLE_GRANTS
    assert role["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    ]
