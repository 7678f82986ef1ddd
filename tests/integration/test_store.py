"""Model registry against a moto S3 server over HTTP: publish, promote, fetch, list, rollback."""

import shutil

import pytest

from sklambda.artifact import train_artifact
from sklambda.errors import IntegrityError, RegistryError
from sklambda.manifest import read_manifest
from training.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def second_dir(tmp_path, house_config, house_dataset):
    """A second version of the model (ridge), so there is something to promote and roll back."""
    config = house_config.model_copy(
        update={
            "estimator": house_config.estimator.model_copy(
                update={"kind": "ridge", "params": {"alpha": 1.0}}
            )
        }
    )
    return train_artifact(config, house_dataset, tmp_path / "second").folder


def test_publish_then_promote_then_resolve(store, trained_dir):
    manifest = store.publish(trained_dir)
    record = store.promote(manifest.name, manifest.version)
    assert record.previous is None
    assert store.resolve(manifest.name).version == manifest.version
    assert store.versions(manifest.name) == [manifest.version]


def test_publishing_the_same_version_twice_is_refused(store, trained_dir):
    store.publish(trained_dir)
    with pytest.raises(RegistryError, match="already exists"):
        store.publish(trained_dir)


def test_promoting_a_missing_version_leaves_the_alias_unchanged(store, trained_dir):
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    missing = "20260101T000000Z-00000000"
    with pytest.raises(RegistryError, match=f"no version {missing}"):
        store.promote(manifest.name, missing)
    assert store.alias(manifest.name, "live").version == manifest.version


def test_promote_records_previous_and_rollback_restores_it(store, trained_dir, second_dir):
    first = store.publish(trained_dir)
    second = store.publish(second_dir)
    store.promote(first.name, first.version)
    record = store.promote(second.name, second.version)
    assert record.previous == first.version
    rolled = store.rollback(first.name)
    assert rolled.version == first.version
    assert store.resolve(first.name).version == first.version
    with pytest.raises(RegistryError, match="no previous version"):
        store.rollback(first.name)


def test_fetch_verifies_and_caches_by_sha256(store, trained_dir, tmp_path):
    manifest = store.publish(trained_dir)
    path = store.fetch(manifest, tmp_path / "cache").path
    assert path.name == f"{manifest.artifact.sha256}.joblib"
    assert path.read_bytes() == (trained_dir / "model.joblib").read_bytes()


def test_tampered_artifact_in_the_bucket_is_refused(store, s3, bucket, trained_dir, tmp_path):
    manifest = store.publish(trained_dir)
    key = store.version_prefix(manifest.name, manifest.version) + "model.joblib"
    s3.put_object(Bucket=bucket, Key=key, Body=b"not the model")
    with pytest.raises(IntegrityError, match="does not match manifest"):
        store.fetch(manifest, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())
    with pytest.raises(IntegrityError):
        store.promote(manifest.name, manifest.version)


def test_publishing_a_tampered_local_folder_is_refused(store, artifact_dir):
    (artifact_dir / "model.joblib").write_bytes(b"evil pickle")
    with pytest.raises(IntegrityError):
        store.publish(artifact_dir)
    assert store.versions(read_manifest(artifact_dir).name) == []


def test_concurrent_promotions_cannot_both_win(store, trained_dir, second_dir):
    first = store.publish(trained_dir)
    second = store.publish(second_dir)
    seen = store.alias(first.name, "live")  # both runs read "no alias yet"
    store.promote(first.name, first.version, expected=seen)
    with pytest.raises(RegistryError, match="changed while this promotion ran"):
        store.promote(second.name, second.version, expected=seen)
    assert store.alias(first.name, "live").version == first.version


def test_cli_publish_promote_list_show_rollback(
    s3_endpoint, bucket, trained_dir, second_dir, capsys
):
    folder = shutil.copytree(trained_dir, trained_dir.parent / "cli-copy", dirs_exist_ok=True)
    assert main(["publish", str(folder), "--bucket", bucket, "--promote"]) == 0
    assert main(["publish", str(second_dir), "--bucket", bucket]) == 0
    second = read_manifest(second_dir)
    assert (
        main(["promote", "--model", second.name, "--version", second.version, "--bucket", bucket])
        == 0
    )
    assert main(["list", "--bucket", bucket]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith(second.version))
    assert row[1] == "ridge" and row[-1] == "live"
    assert main(["rollback", "--model", second.name, "--bucket", bucket]) == 0
    assert main(["show", "--model", second.name, "--bucket", bucket]) == 0
    assert read_manifest(trained_dir).version in capsys.readouterr().out
    missing = "20260101T000000Z-00000000"
    assert main(["promote", "--model", second.name, "--version", missing, "--bucket", bucket]) == 1
    assert f"no version {missing}" in capsys.readouterr().err


def test_access_denied_on_the_alias_says_what_it_may_mean(store):
    """A role without ListBucket gets 403 for a missing key; the error must say so, not crash."""
    from botocore.stub import Stubber

    with Stubber(store.s3) as stub:
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        with pytest.raises(RegistryError, match="may not exist") as caught:
            store.alias("house-prices", "live")
    assert caught.value.status == 403


def test_alias_also_pins_the_served_numpy_artifact(store, s3, bucket, trained_dir):
    import json

    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    assert store.alias(manifest.name, "live").numpy_sha256 == manifest.numpy_artifact.sha256
    key = store.version_prefix(manifest.name, manifest.version) + "manifest.json"
    raw = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    raw["numpy_artifact"]["sha256"] = "0" * 64  # the manifest now vouches for another file
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(raw).encode())
    with pytest.raises(IntegrityError, match="promises sha256"):
        store.resolve(manifest.name)
