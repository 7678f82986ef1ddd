"""CLI: trains with progress and a metrics table; bad input is one line, no traceback; tables are
plain text when stdout is not a terminal; a local S3 needs no credentials."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.helpers import HOUSE_CONFIG
from training.cli import (
    describe,
    format_metric,
    format_metrics,
    format_run,
    local_s3_credentials,
    main,
    s3_error_message,
)

pytestmark = pytest.mark.unit

METRICS = {
    "primary": "r2",
    "cv": {
        "r2": {"mean": 0.66391, "sd": 0.06812},
        "rmse": {"mean": 15234.56, "sd": 1203.04},
        "mae": {"mean": 11876.49, "sd": 803.3},
        "mape": {"mean": 0.18123, "sd": 0.01234},
    },
    "cv_folds": 5,
    "holdout": {"r2": 0.70901, "rmse": 14100.0, "mae": 10999.95, "mape": 0.17},
    "holdout_rows": 101,
    "train_rows": 445,
    "rows": 546,
}


def test_train_writes_artifact_and_prints_metrics(tmp_path, capsys):
    assert main(["train", "--config", str(HOUSE_CONFIG), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "cv fold 5/5" in out
    assert "r2" in out and "holdout" in out
    assert "\x1b" not in out  # not a terminal: no colour codes, no progress bar
    assert out.strip().splitlines()[-1].startswith("version ")
    assert (tmp_path / "m" / "model.joblib").is_file()
    assert (tmp_path / "m" / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("metric", "value", "shown"),
    [
        ("r2", 0.66391, "0.6639"),
        ("mape", 0.18123, "0.1812"),
        ("rmse", 15234.56, "15,234.6"),
        ("mae", 999.94, "999.9"),
    ],
)
def test_one_number_format_for_every_metric(metric, value, shown):
    assert format_metric(metric, value) == shown


def test_metrics_table_is_plain_text_with_the_shared_number_format():
    text = format_metrics(METRICS)
    assert "\x1b" not in text
    row = next(line.split() for line in text.splitlines() if line.split()[:1] == ["rmse"])
    assert row == ["rmse", "15,234.6", "1,203.0", "14,100.0"]
    assert "5-fold CV on 546 rows" in text


def test_the_mean_baseline_is_a_column_when_the_manifest_has_it():
    baseline = {"r2": -0.0002, "rmse": 28771.46, "mae": 22443.4, "mape": 0.37213}
    text = format_metrics({**METRICS, "baseline": baseline})
    assert text.splitlines()[0].split() == [
        "metric",
        "cv",
        "mean",
        "cv",
        "sd",
        "holdout",
        "baseline",
    ]
    row = next(line.split() for line in text.splitlines() if line.split()[:1] == ["r2"])
    assert row == ["r2", "0.6639", "0.0681", "0.7090", "-0.0002"]


def test_run_summary_shows_decision_both_versions_and_metrics():
    run = {
        "run_id": "20261124T194322Z-ff5e8775",
        "status": "promoted",
        "reason": "challenger r2 0.7090 is not worse than champion 0.7090 (tolerance 0.01)",
        "champion": {"version": "v-old", "holdout": {"r2": 0.70901, "rmse": 14100.0}},
        "challenger": {"version": "v-new", "metrics": {"holdout": {"r2": 0.71, "mae": 10.0}}},
    }
    text = format_run(run)
    assert isinstance(text, str) and "\x1b" not in text
    assert text.splitlines()[0] == f"run {run['run_id']}: PROMOTED - {run['reason']}"
    assert "v-old" in text and "v-new" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert rows["r2"] == ["0.7090", "0.7100"]
    assert rows["rmse"] == ["14,100.0", "-"]
    assert rows["mae"] == ["-", "10.0"]


def test_failed_run_without_metrics_is_still_one_summary():
    run = {"run_id": "r1", "status": "failed", "reason": "boom", "champion": {}, "challenger": {}}
    text = format_run(run)
    assert text.splitlines()[0] == "run r1: FAILED - boom"
    assert "r2" not in text


def test_a_long_reason_stays_on_one_line():
    reason = " ".join(["the data and config are the champion's own: nothing to train"] * 5)
    run = {
        "run_id": "r1",
        "status": "unchanged",
        "reason": reason,
        "champion": {},
        "challenger": {},
    }
    assert format_run(run).splitlines()[0] == f"run r1: UNCHANGED - {reason}"


def test_describe_shows_the_manifest_and_its_metrics(manifest):
    text = describe(manifest)
    assert "\x1b" not in text
    assert manifest.version in text and manifest.artifact.sha256 in text
    assert format_metric("r2", manifest.metrics["holdout"]["r2"]) in text


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:3001", "http://localhost:5000", "http://[::1]:9000", "http://127.0.0.2"],
)
def test_a_loopback_s3_without_credentials_gets_dummy_ones(endpoint):
    assert local_s3_credentials({"AWS_ENDPOINT_URL": endpoint}) == {
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
        "region_name": "us-east-1",
    }
    only_s3 = local_s3_credentials({"AWS_ENDPOINT_URL_S3": endpoint, "AWS_REGION": "eu-west-1"})
    assert only_s3 == {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"AWS_ENDPOINT_URL": "https://s3.example.com"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1.example.com"},
        {"AWS_ENDPOINT_URL": "http://10.0.0.5:9000"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:3001", "AWS_ACCESS_KEY_ID": "AKIA"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:3001", "AWS_PROFILE": "dev"},
        # the S3-specific endpoint wins: a real S3 gets no dummy credentials
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:3001", "AWS_ENDPOINT_URL_S3": "https://s3.aws"},
    ],
)
def test_no_dummy_credentials_unless_local_and_none_set(env):
    assert local_s3_credentials(env) == {}


def _client_error(code, operation="ListObjectsV2", status=400):
    reply = {
        "Error": {"Code": code, "Message": "raw"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(reply, operation)


def test_s3_errors_become_sentences_that_name_the_bucket():
    missing = "bucket 'nope' does not exist (check --bucket or $MODEL_BUCKET)"
    assert s3_error_message(_client_error("NoSuchBucket"), "nope") == missing
    assert s3_error_message(_client_error("404", "HeadBucket", 404), "nope") == missing
    denied = s3_error_message(_client_error("AccessDenied", status=403), "b")
    assert denied.startswith("access denied to bucket 'b'")
    other = s3_error_message(_client_error("SlowDown", "PutObject", 503), "b")
    assert "SlowDown" in other and "PutObject" in other and "\n" not in other
    unreachable = EndpointConnectionError(
        endpoint_url="http://127.0.0.1:9/b?list-type=2",
        error=OSError("AWSHTTPConnection(host='127.0.0.1', port=9): [Errno 111] refused"),
    )
    assert s3_error_message(unreachable, "b") == (
        "cannot reach S3 at http://127.0.0.1:9: [Errno 111] refused"
    )


@pytest.mark.parametrize(
    ("csv_text", "needle"),
    [
        ("price,lotsize\n1,2\n", "error: "),
        ("not,a,housing\nfile\n", "expected 3 fields"),
    ],
)
def test_broken_csv_is_one_line_error_and_writes_nothing(tmp_path, capsys, csv_text, needle):
    data = tmp_path / "broken.csv"
    data.write_text(csv_text)
    out = tmp_path / "out"
    code = main(["train", "--config", str(HOUSE_CONFIG), "--data", str(data), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not out.exists()
    assert not any(p.name.startswith(".staging") for p in tmp_path.iterdir())


def test_registry_command_without_bucket_explains(monkeypatch, capsys):
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    assert main(["list"]) == 1
    assert "pass --bucket or set MODEL_BUCKET" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "publish", "promote", "rollback", "list", "show", "retrain"):
        assert command in out
