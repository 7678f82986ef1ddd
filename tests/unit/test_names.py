"""Names from the registry and the CLI (model, version, alias, sha256, artifact keys, dataset keys,
run ids) are checked against one set of strict patterns before any S3 key or local path is built
from them, and a bad one is a clear error, never a path outside its folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sklambda.artifact import new_version
from sklambda.errors import IntegrityError, InvalidNameError, ModelUnavailableError
from sklambda.manifest import Manifest, served_artifact
from sklambda.names import PATTERNS, validate_name
from sklambda.retrain import new_run_id, request_from_event
from sklambda.settings import RetrainSettings, ServingSettings
from sklambda.store import ModelStore
from training.cli import main

pytestmark = pytest.mark.unit

SHA = "a" * 64
TRAVERSAL_ALIAS = "../../../../datasets/x"
LONG_ALIAS = "a" * 2000


class NoS3:
    """An S3 client that fails the test if anything reaches it: names are checked first."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"S3 {name} was called with a name that should have been refused")


@pytest.fixture
def store() -> ModelStore:
    return ModelStore(NoS3(), "bucket")  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    # Should a name slip through to a client, it fails on a closed local port, never AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


# --- the patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("model name", "house-prices"),
        ("version", new_version()),
        ("run id", new_run_id()),
        ("alias", "live"),
        ("alias", "shadow-2"),
        ("sha256", SHA),
        ("dataset key", "datasets/house-prices/2026-11.csv"),
        ("dataset key", "datasets/house-prices/2026/11/windsor.CSV"),
    ],
)
def test_names_training_and_operators_use_are_valid(kind: Any, value: str) -> None:
    assert validate_name(kind, value) == value


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("alias", TRAVERSAL_ALIAS),
        ("alias", LONG_ALIAS),
        ("alias", "live\n"),
        ("alias", "Live"),
        ("alias", ""),
        ("model name", "../house-prices"),
        ("model name", "house/prices"),
        ("version", "../../x"),
        ("version", new_version() + "-b"),
        ("run id", "/etc/passwd"),
        ("sha256", "../../x"),
        ("sha256", SHA.upper()),
        ("sha256", SHA + "\n"),
        ("dataset key", "/etc/passwd"),
        ("dataset key", "datasets/house-prices/../../models/house-prices/aliases/live.csv"),
        ("dataset key", "datasets/house-prices/.hidden.csv"),
        ("dataset key", "models/house-prices/aliases/live.json"),
    ],
)
def test_names_that_could_leave_their_folder_are_refused(kind: Any, value: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        validate_name(kind, value)
    assert (caught.value.status, caught.value.code) == (400, "invalid_name")
    assert f"invalid {kind}" in caught.value.message


def test_a_refused_name_is_not_echoed_in_full() -> None:
    with pytest.raises(InvalidNameError) as caught:
        validate_name("alias", LONG_ALIAS)
    assert len(caught.value.message) < 200
    assert "2,000 characters" in caught.value.message


def test_the_config_and_the_registry_share_the_model_name_pattern() -> None:
    from sklambda.config import ModelConfig

    pattern = ModelConfig.model_json_schema()["properties"]["name"]["pattern"]
    assert pattern == PATTERNS["model name"]


# --- the store's key builders ----------------------------------------------------------------


@pytest.mark.parametrize("alias", [TRAVERSAL_ALIAS, LONG_ALIAS])
def test_the_store_builds_no_key_from_a_bad_alias(store: ModelStore, alias: str) -> None:
    with pytest.raises(InvalidNameError):
        store.alias_key("house-prices", alias)
    with pytest.raises(InvalidNameError):
        store.alias("house-prices", alias)
    with pytest.raises(InvalidNameError):
        store.promote("house-prices", new_version(), alias)


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.version_prefix("house-prices", "../../x"),
        lambda s: s.version_prefix("../x", new_version()),
        lambda s: s.run_key("house-prices", "../../aliases/live"),
        lambda s: s.manifest("house-prices", "../../aliases/live"),
        lambda s: ModelStore.dataset_key("house-prices", "../../models/x.csv"),
        lambda s: s.dataset("house-prices", "datasets/house-prices/../../../etc/passwd.csv"),
        lambda s: s.dataset("house-prices", "datasets/other-model/data.csv"),
    ],
)
def test_the_store_builds_no_key_from_a_bad_name(store: ModelStore, build: Any) -> None:
    with pytest.raises(InvalidNameError):
        build(store)


def test_fetch_builds_no_cache_path_from_a_bad_sha256(
    store: ModelStore, manifest: Manifest, tmp_path: Path
) -> None:
    """Found: a manifest sha256 of ../../x deleted a file outside the cache (the cache file is
    dest_dir/<sha256>.<format>). model_construct skips validation, as a careless caller might."""
    outside = tmp_path / "x.joblib"
    outside.write_bytes(b"someone else's file")
    cache = tmp_path / "a" / "cache"
    info = manifest.artifact.model_construct(
        key="model.joblib", sha256="../../x", bytes=10, format="joblib"
    )
    with pytest.raises(InvalidNameError):
        store.fetch(manifest, cache, info=info)
    assert outside.read_bytes() == b"someone else's file"


@pytest.mark.parametrize(
    "event",
    [
        {"dataset_key": "models/house-prices/aliases/live.json"},
        {"dataset_key": "datasets/house-prices/../../x.csv"},
        {"model": "../../x"},
    ],
)
def test_a_retrain_event_with_a_bad_name_is_refused(event: dict[str, str]) -> None:
    with pytest.raises(InvalidNameError):
        request_from_event(event, RetrainSettings(bucket="b", model="house-prices"))


# --- manifests -------------------------------------------------------------------------------


def _rewritten(trained_dir: Path, change: Any) -> bytes:
    raw = json.loads((trained_dir / "manifest.json").read_text())
    change(raw)
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: m["artifact"].update(sha256="../../x"), id="sha256-traversal"),
        pytest.param(lambda m: m["artifact"].update(key="/etc/passwd"), id="absolute-key"),
        pytest.param(lambda m: m["artifact"].update(key="../model.joblib"), id="relative-key"),
        pytest.param(lambda m: m["artifact"].update(format="npz"), id="pickle-as-npz"),
        pytest.param(
            lambda m: m.update(numpy_artifact={**m["artifact"]}), id="numpy-slot-holds-pickle"
        ),
        pytest.param(lambda m: m.update(version="../../x"), id="version-traversal"),
        pytest.param(lambda m: m.update(name="../x"), id="name-traversal"),
        pytest.param(lambda m: m.update(parent_version="../x"), id="parent-traversal"),
    ],
)
def test_a_manifest_with_a_bad_name_is_refused(trained_dir: Path, change: Any) -> None:
    with pytest.raises(IntegrityError, match="is not a valid manifest"):
        Manifest.from_json(_rewritten(trained_dir, change))


def test_publish_refuses_an_absolute_artifact_key_before_touching_s3(
    store: ModelStore, artifact_dir: Path, tmp_path: Path
) -> None:
    """Found: an artifact key that was an absolute path made publish upload a file from outside
    the artifact folder (folder / "/abs" is "/abs"), its sha256 and size matching."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not a model")
    import hashlib

    raw = json.loads((artifact_dir / "manifest.json").read_text())
    raw["artifact"].update(
        key=str(secret), sha256=hashlib.sha256(b"not a model").hexdigest(), bytes=11
    )
    (artifact_dir / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(IntegrityError, match="artifact.key"):
        store.publish(artifact_dir)


# --- MODEL_FORMAT=npz ------------------------------------------------------------------------


def test_model_format_npz_refuses_a_manifest_without_the_numpy_form(manifest: Manifest) -> None:
    pickle_only = manifest.model_copy(update={"numpy_artifact": None})
    with pytest.raises(ModelUnavailableError) as caught:
        served_artifact(pickle_only, "npz")
    assert (caught.value.status, caught.value.code) == (503, "pickle_refused")
    assert served_artifact(manifest, "npz").format == "npz"
    assert served_artifact(pickle_only, "auto").format == "joblib"  # auto still falls back


def test_settings_take_npz_and_the_signing_variables() -> None:
    settings = ServingSettings.from_env(
        {"MODEL_FORMAT": "npz", "REQUIRE_SIGNED_MODELS": "true", "MODEL_SIGNING_KEY_ID": "k"}
    )
    assert (settings.model_format, settings.require_signed, settings.signing_key_id) == (
        "npz",
        True,
        "k",
    )
    assert ServingSettings().require_signed is False  # the dev default


# --- the CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["promote", "--version", new_version(), "--alias", TRAVERSAL_ALIAS], "alias"),
        (["promote", "--version", new_version(), "--alias", LONG_ALIAS], "alias"),
        (["promote", "--version", "../../x"], "version"),
        (["rollback", "--alias", TRAVERSAL_ALIAS], "alias"),
        (["show", "--version", "../../x"], "version"),
        (["retrain", "--dataset-key", "/etc/passwd"], "dataset key"),
    ],
)
def test_the_cli_refuses_a_bad_name_in_one_line_before_any_s3_call(
    argv: list[str], kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--model", "house-prices", "--bucket", "b"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid {kind} ") and err.count("\n") == 1
    assert len(err) < 300


def test_the_cli_refuses_a_bad_model_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", "--model", "../../x", "--bucket", "b"]) == 1
    assert capsys.readouterr().err.startswith("error: invalid model name '../../x'")
