"""The model report in the registry, against a moto S3 server: `publish` uploads report.html
into the version's folder, write-once; `python -m training report VERSION` downloads it and
prints its path, or says why a version has none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sklambda.artifact import new_version
from sklambda.errors import InvalidNameError, RegistryError
from sklambda.manifest import read_manifest
from sklambda.retrain import Retrainer, RetrainRequest
from tests.helpers import HOUSE_CSV
from training import report
from training.cli import main

pytestmark = pytest.mark.integration

PAGE = "<!DOCTYPE html>\n<html><body><h1>Model report</h1></body></html>\n"


@pytest.fixture
def with_report(artifact_dir: Path) -> Path:
    """A trained folder with its report.html (as `train` writes it)."""
    (artifact_dir / report.REPORT_FILE).write_text(PAGE, encoding="utf-8")
    return artifact_dir


def _publish(folder: Path, bucket: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["publish", str(folder), "--bucket", bucket]) == 0
    capsys.readouterr()
    return read_manifest(folder).version


def test_publish_uploads_the_report_into_the_versions_folder(
    s3_endpoint, s3, bucket, with_report, capsys
):
    assert main(["publish", str(with_report), "--bucket", bucket]) == 0
    version = read_manifest(with_report).version
    key = f"models/house-prices/versions/{version}/report.html"
    assert f"model report: s3://{bucket}/{key}" in capsys.readouterr().out
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read().decode() == PAGE
    assert stored["ContentType"] == "text/html; charset=utf-8"


def _extras(folder: Path) -> dict[str, Path]:
    return {report.REPORT_FILE: folder / report.REPORT_FILE}


def test_a_published_report_is_never_overwritten(s3_endpoint, s3, bucket, store, with_report):
    manifest = store.publish(with_report, extras=_extras(with_report))
    (with_report / report.REPORT_FILE).write_text("<p>forged</p>", encoding="utf-8")
    with pytest.raises(RegistryError) as caught:
        store.publish(with_report, extras=_extras(with_report))
    assert caught.value.code == "version_exists"
    key = report.report_key(store, manifest.name, manifest.version)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() == PAGE


def test_publish_uploads_the_report_before_the_manifest(s3, bucket, store, with_report):
    """GIVEN a folder with its report WHEN it is published THEN report.html is written before
    manifest.json, the object that makes a version visible."""
    written: list[str] = []
    s3.meta.events.register(
        "before-call.s3.PutObject", lambda params, **_: written.append(params["url_path"])
    )
    manifest = store.publish(with_report, extras=_extras(with_report))
    names = [path.rsplit("/", 1)[-1] for path in written]
    assert names.index(report.REPORT_FILE) < names.index("manifest.json") == len(names) - 1
    assert manifest.version in written[-1]


def test_a_publish_that_fails_after_the_report_leaves_no_visible_version(
    s3, bucket, store, with_report
):
    """A crash between the report and the manifest: the version is not published (no
    manifest), so nothing ever sees it without its report."""

    def fail_on_manifest(params: dict[str, Any], **_: Any) -> None:
        if params["url_path"].endswith("/manifest.json"):
            raise ConnectionError("the network went away")

    s3.meta.events.register("before-call.s3.PutObject", fail_on_manifest)
    with pytest.raises(ConnectionError):
        store.publish(with_report, extras=_extras(with_report))
    version = read_manifest(with_report).version
    assert store.versions("house-prices") == []
    key = f"models/house-prices/versions/{version}/report.html"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() == PAGE


@pytest.mark.parametrize(
    "name", ["../report.html", "reports/report.html", "manifest.json", "model.joblib", "x.exe"]
)
def test_an_extra_file_with_a_bad_name_is_refused_before_any_upload(
    s3, bucket, store, with_report, name
):
    with pytest.raises(InvalidNameError):
        store.publish(with_report, extras={name: with_report / report.REPORT_FILE})
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_report_downloads_it_and_prints_its_path(
    s3_endpoint, bucket, with_report, tmp_path, capsys
):
    version = _publish(with_report, bucket, capsys)
    out = tmp_path / "seen" / "report.html"
    argv = ["report", version, "--model", "house-prices", "--bucket", bucket, "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(out)
    assert out.read_text(encoding="utf-8") == PAGE
    assert f"model report of house-prices {version}" in captured.err


def test_report_finds_the_model_of_a_version_and_writes_under_artifacts(
    s3_endpoint, bucket, with_report, tmp_path, monkeypatch, capsys
):
    version = _publish(with_report, bucket, capsys)
    monkeypatch.chdir(tmp_path)
    assert main(["report", version, "--bucket", bucket]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path == Path("artifacts/reports") / f"house-prices-{version}.html"
    assert (tmp_path / path).read_text(encoding="utf-8") == PAGE


def test_report_open_hands_the_file_to_the_web_browser(
    s3_endpoint, bucket, with_report, tmp_path, monkeypatch, capsys
):
    version = _publish(with_report, bucket, capsys)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    out = tmp_path / "r.html"
    assert main(["report", version, "--bucket", bucket, "--out", str(out), "--open"]) == 0
    assert opened == [out.resolve().as_uri()]


def test_a_version_a_retrain_published_has_no_report_and_report_says_why(
    s3_endpoint, bucket, trained_dir, artifact_dir, capsys
):
    parent = _publish(trained_dir, bucket, capsys)
    raw = json.loads((artifact_dir / "manifest.json").read_text())
    raw.update(version=new_version(), parent_version=parent)  # as the retrain function writes
    (artifact_dir / "manifest.json").write_text(json.dumps(raw))
    version = _publish(artifact_dir, bucket, capsys)
    assert main(["report", version, "--bucket", bucket]) == 1
    error = " ".join(capsys.readouterr().err.split())
    assert f"house-prices {version} has no model report" in error
    assert f"published by a retrain from {parent}" in error
    assert "no matplotlib" in error


def test_a_version_published_without_a_report_says_so(s3_endpoint, bucket, trained_dir, capsys):
    version = _publish(trained_dir, bucket, capsys)
    assert main(["report", version, "--bucket", bucket]) == 1
    error = " ".join(capsys.readouterr().err.split())
    assert "has no model report: it was published without one" in error


def test_report_of_a_version_no_model_has_is_a_clear_error(
    s3_endpoint, bucket, trained_dir, capsys
):
    _publish(trained_dir, bucket, capsys)
    missing = new_version()
    assert main(["report", missing, "--bucket", bucket]) == 1
    error = " ".join(capsys.readouterr().err.split())
    assert f"no model in s3://{bucket} has version {missing}" in error


def test_a_retrain_publishes_no_report_and_its_run_record_says_so(
    s3_endpoint, s3, bucket, store, trained_dir, capsys
):
    champion = store.publish(trained_dir)
    store.promote(champion.name, champion.version)
    lines = HOUSE_CSV.read_bytes().splitlines(keepends=True)
    s3.put_object(Bucket=bucket, Key="datasets/house-prices/drop.csv", Body=b"".join(lines[:-40]))
    record = Retrainer(store).run(RetrainRequest(model="house-prices"))
    challenger = record.challenger["version"]
    key = f"models/house-prices/runs/{record.run_id}.json"
    saved = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert saved["challenger"]["report"].startswith("none: the retrain function cannot render")
    assert main(["report", challenger, "--bucket", bucket]) == 1
    error = " ".join(capsys.readouterr().err.split())
    assert f"published by a retrain from {champion.version}" in error
