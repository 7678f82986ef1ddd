"""Registry trust against moto S3 and KMS over HTTP: a writer to models/ cannot make the predict
function (or a retrain) run its code. Versions are signed by a KMS key (ECC_NIST_P256) when
published; serving checks the signature before it trusts any sha256 in the manifest, refuses
unsigned versions when REQUIRE_SIGNED_MODELS is true, and never loads a pickle with
MODEL_FORMAT=npz. Names read from the registry never become paths outside their folder."""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

import predict_handler
from sklambda.errors import RegistryError, SignatureError
from sklambda.manifest import Manifest
from sklambda.retrain import Retrainer, RetrainRequest
from sklambda.serving import ModelHolder
from sklambda.settings import ServingSettings
from sklambda.signing import ATTESTATION_FILE, Signer, Verifier, attestation_message
from sklambda.store import ModelStore
from tests.helpers import HOUSE_CSV, load_event
from training.cli import main

pytestmark = pytest.mark.integration

NAME = "house-prices"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingKms:
    """A KMS client that counts GetPublicKey calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.public_key_calls = 0

    def get_public_key(self, **kwargs: Any) -> Any:
        self.public_key_calls += 1
        return self.client.get_public_key(**kwargs)


class Probe:
    """A pickle that creates `marker` when it is unpickled: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def kms(s3_endpoint: str) -> Any:
    return boto3.client("kms", endpoint_url=s3_endpoint)


@pytest.fixture
def key_id(kms: Any) -> str:
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    return str(key["KeyMetadata"]["KeyId"])


@pytest.fixture
def signer(kms: Any, key_id: str) -> Signer:
    return Signer(kms, key_id)


@pytest.fixture
def signed_live(store: ModelStore, trained_dir: Path, signer: Signer) -> Manifest:
    manifest = store.publish(trained_dir, signer)
    store.promote(manifest.name, manifest.version)
    return manifest


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pickle-ran"


@pytest.fixture
def make_holder(s3_endpoint, bucket, kms, key_id, tmp_path, monkeypatch):
    """A fresh ModelHolder wired into the handler, as on a new Lambda container."""

    def make(require: bool = True, key: str | None = None, **extra: Any) -> ModelHolder:
        settings = ServingSettings(
            bucket=bucket,
            model_name=NAME,
            refresh_seconds=60,
            require_signed=require,
            signing_key_id=key_id if key is None else key,
            **{"cache_dir": tmp_path / "cache", **extra},
        )
        counting = CountingKms(kms)
        errors: list[Exception] = []
        holder = ModelHolder(
            settings,
            lambda: ModelStore(boto3.client("s3", endpoint_url=s3_endpoint), bucket),
            on_refresh_error=errors.append,
            clock=Clock(),
            kms_factory=lambda: counting,
        )
        holder.kms = counting  # type: ignore[attr-defined]
        holder.errors = errors  # type: ignore[attr-defined]
        monkeypatch.setattr(predict_handler, "holder", holder)
        return holder

    return make


def predict(context: Any) -> tuple[int, dict[str, Any]]:
    reply = predict_handler.lambda_handler(load_event("predict"), context)
    return reply["statusCode"], json.loads(reply["body"])


def forge(s3: Any, bucket: str, store: ModelStore, version: str, marker: Path) -> bytes:
    """What a writer to models/ can do: replace version's pickle with one that runs code, rewrite
    its manifest to match (and drop the numpy form, so "auto" would load the pickle), and point
    the alias at it with matching sha256s: every sha256 check passes."""
    evil = pickle.dumps(Probe(marker))
    sha = hashlib.sha256(evil).hexdigest()
    base = store.version_prefix(NAME, version)
    raw = json.loads(s3.get_object(Bucket=bucket, Key=base + "manifest.json")["Body"].read())
    raw["artifact"].update(sha256=sha, bytes=len(evil))
    raw["numpy_artifact"] = None
    s3.put_object(Bucket=bucket, Key=base + "model.joblib", Body=evil)
    s3.put_object(Bucket=bucket, Key=base + "manifest.json", Body=json.dumps(raw).encode())
    alias = {"version": version, "sha256": sha, "numpy_sha256": "", "history": []}
    s3.put_object(Bucket=bucket, Key=store.alias_key(NAME, "live"), Body=json.dumps(alias))
    return evil


# --- signed publishing -----------------------------------------------------------------------


def test_publish_writes_an_attestation_that_verifies_offline(
    store, s3, bucket, kms, key_id, signed_live
):
    base = store.version_prefix(NAME, signed_live.version)
    body = s3.get_object(Bucket=bucket, Key=base + "manifest.json")["Body"].read()
    saved = json.loads(s3.get_object(Bucket=bucket, Key=base + ATTESTATION_FILE)["Body"].read())
    assert saved["algorithm"] == "ECDSA_SHA_256" and saved["key_id"].endswith(key_id)
    message = saved["message"].encode()
    assert message == attestation_message(NAME, signed_live.version, sha256(body))
    assert json.loads(message) == {
        "type": "sklambda.model-attestation/1",
        "name": NAME,
        "version": signed_live.version,
        "manifest_sha256": sha256(body),
    }
    # An independent implementation agrees: the signature is KMS's, over the RAW message.
    public = load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(saved["signature"]), message, ec.ECDSA(hashes.SHA256()))


def test_an_attestation_is_written_once(store, s3, bucket, signed_live):
    key = store.version_prefix(NAME, signed_live.version) + ATTESTATION_FILE
    before = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with pytest.raises(RegistryError) as caught:
        store._put_new(key, b"{}")  # the conditional put publish writes it with
    assert caught.value.code == "version_exists"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == before


def test_a_key_publish_may_not_use_leaves_no_files(store, s3, bucket, kms, trained_dir):
    with pytest.raises(SignatureError) as caught:
        store.publish(trained_dir, Signer(kms, "alias/not-a-key"))
    assert caught.value.code == "signing_failed"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_valid_signed_model_loads(make_holder, signed_live, lambda_context):
    holder = make_holder(require=True)
    status, body = predict(lambda_context)
    assert status == 200 and body["model"]["version"] == signed_live.version
    assert holder.loaded is not None and holder.loaded.format == "npz"


def test_the_public_key_is_fetched_once_per_holder(
    make_holder, store, signer, signed_live, tmp_path, house_config, house_dataset, lambda_context
):
    from sklambda.artifact import train_artifact

    holder = make_holder(require=True)
    assert predict(lambda_context)[0] == 200
    second = store.publish(
        train_artifact(house_config, house_dataset, tmp_path / "second").folder, signer
    )
    store.promote(NAME, second.version)
    holder.clock.now += 61  # the re-check is due: a refresh verifies the new version
    assert predict(lambda_context)[0] == 200
    holder.wait_for_refresh(30)
    assert holder.loaded is not None and holder.loaded.manifest.version == second.version
    assert holder.kms.public_key_calls == 1
    other = make_holder(require=True)  # another container fetches its own copy, once
    assert predict(lambda_context)[0] == 200
    assert other.kms.public_key_calls == 1


# --- refused -------------------------------------------------------------------------------


def test_an_unsigned_model_is_refused_when_signatures_are_required(
    make_holder, store, trained_dir, lambda_context
):
    manifest = store.publish(trained_dir)  # no signer
    store.promote(manifest.name, manifest.version)
    holder = make_holder(require=True)
    status, body = predict(lambda_context)
    assert status == 503 and body["error"]["code"] == "unsigned_model"
    assert holder.loaded is None


def test_an_unsigned_model_loads_when_signatures_are_not_required(
    make_holder, store, trained_dir, lambda_context
):
    """The dev default (REQUIRE_SIGNED_MODELS=false), with or without a key configured."""
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    make_holder(require=False)
    assert predict(lambda_context)[0] == 200
    make_holder(require=False, key="")
    assert predict(lambda_context)[0] == 200


def test_a_version_signed_by_another_key_is_refused(
    make_holder, store, kms, trained_dir, lambda_context
):
    other = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    manifest = store.publish(trained_dir, Signer(kms, other["KeyId"]))
    store.promote(manifest.name, manifest.version)
    holder = make_holder(require=False)
    status, body = predict(lambda_context)
    assert status == 503 and body["error"]["code"] == "bad_signature"
    assert "is not signed by key" in body["error"]["message"]
    assert holder.loaded is None


def test_an_attestation_that_is_not_one_is_refused(
    make_holder, store, s3, bucket, signed_live, lambda_context
):
    key = store.version_prefix(NAME, signed_live.version) + ATTESTATION_FILE
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"signature": "not base64!"}')
    make_holder(require=True)
    status, body = predict(lambda_context)
    assert status == 503 and body["error"]["code"] == "bad_signature"


def test_required_signatures_without_a_key_are_refused_as_not_configured(
    make_holder, signed_live, lambda_context
):
    make_holder(require=True, key="")
    status, body = predict(lambda_context)
    assert status == 503 and body["error"]["code"] == "not_configured"


@pytest.mark.parametrize(
    ("require", "keep_attestation", "code"),
    [
        (True, True, "bad_signature"),
        (True, False, "unsigned_model"),
        (False, True, "bad_signature"),  # a signed version that does not verify: refused anyway
    ],
)
def test_a_rewritten_pickle_manifest_and_alias_are_refused_and_never_unpickled(
    make_holder,
    store,
    s3,
    bucket,
    signed_live,
    marker,
    lambda_context,
    require,
    keep_attestation,
    code,
):
    """Found: rewriting pickle + manifest + alias together (consistently, as a writer to models/
    can) made the function unpickle, that is run, the new file."""
    forge(s3, bucket, store, signed_live.version, marker)
    if not keep_attestation:
        key = store.version_prefix(NAME, signed_live.version) + ATTESTATION_FILE
        s3.delete_object(Bucket=bucket, Key=key)
    holder = make_holder(require=require)
    status, body = predict(lambda_context)
    assert status == 503 and body["error"]["code"] == code, body
    assert not marker.exists(), "the forged pickle was unpickled"
    assert holder.loaded is None


def test_a_warm_container_keeps_its_model_when_the_alias_moves_to_a_forged_version(
    make_holder, store, s3, bucket, signed_live, artifact_dir, marker, lambda_context
):
    """A new version whose attestation was copied from a genuine one: the signature is KMS's,
    but it vouches for another version and manifest. The refresh fails; the last good model
    keeps serving."""
    holder = make_holder(require=True)
    assert predict(lambda_context)[0] == 200
    raw = json.loads((artifact_dir / "manifest.json").read_text())
    raw["version"] = signed_live.version[:-8] + "0badf00d"
    (artifact_dir / "manifest.json").write_text(json.dumps(raw))
    forged = store.publish(artifact_dir)
    base, genuine = (store.version_prefix(NAME, v) for v in (forged.version, signed_live.version))
    copied = s3.get_object(Bucket=bucket, Key=genuine + ATTESTATION_FILE)["Body"].read()
    s3.put_object(Bucket=bucket, Key=base + ATTESTATION_FILE, Body=copied)
    forge(s3, bucket, store, forged.version, marker)
    holder.clock.now += 61
    status, body = predict(lambda_context)
    holder.wait_for_refresh(30)
    assert status == 200 and body["model"]["version"] == signed_live.version
    assert predict(lambda_context)[1]["model"]["version"] == signed_live.version
    assert [getattr(e, "code", None) for e in holder.errors] == ["bad_signature"]
    assert "vouches for another manifest" in str(holder.errors[0])
    assert not marker.exists()


def test_model_format_npz_refuses_a_manifest_without_the_numpy_form(
    make_holder, store, s3, bucket, trained_dir, marker, lambda_context
):
    """Found: a manifest without numpy_artifact made the function load the pickle."""
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    forge(s3, bucket, store, manifest.version, marker)
    make_holder(require=False, key="", model_format="npz")
    status, body = predict(lambda_context)
    assert status == 503 and body["error"]["code"] == "pickle_refused"
    assert not marker.exists()


def test_the_probe_pickle_runs_code_when_unpickled(tmp_path, marker):
    """The marker proves something: joblib.load of the forged pickle does create it."""
    import joblib

    path = tmp_path / "evil.joblib"
    path.write_bytes(pickle.dumps(Probe(marker)))
    joblib.load(path).close()
    assert marker.exists()


# --- retraining ------------------------------------------------------------------------------


def test_retrain_verifies_the_champion_before_scoring_it(
    store, s3, bucket, kms, key_id, signed_live, marker
):
    s3.put_object(Bucket=bucket, Key=f"datasets/{NAME}/new.csv", Body=HOUSE_CSV.read_bytes())
    forge(s3, bucket, store, signed_live.version, marker)
    verifier = Verifier(key_id, require=True, kms=lambda: kms)
    record = Retrainer(store, verifier=verifier).run(RetrainRequest(model=NAME))
    assert record.status == "failed" and record.error is not None
    assert record.error["code"] == "bad_signature"
    assert not marker.exists()
    assert store.alias(NAME, "live").version == signed_live.version


def test_retrain_signs_the_challenger_it_publishes(store, s3, bucket, kms, key_id, signed_live):
    reordered = HOUSE_CSV.read_text().splitlines()
    data = "\n".join([reordered[0], *reversed(reordered[1:])]) + "\n"
    s3.put_object(Bucket=bucket, Key=f"datasets/{NAME}/new.csv", Body=data.encode())
    verifier = Verifier(key_id, require=True, kms=lambda: kms)
    record = Retrainer(store, signer=Signer(kms, key_id), verifier=verifier).run(
        RetrainRequest(model=NAME)
    )
    assert record.status in ("promoted", "rejected"), record.reason
    store.manifest(NAME, record.challenger["version"], verifier)  # signed and verifies


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_publish_signs_with_the_signing_key(
    s3_endpoint, bucket, key_id, trained_dir, make_holder, lambda_context, capsys
):
    folder = shutil.copytree(trained_dir, trained_dir.parent / "cli-signed", dirs_exist_ok=True)
    argv = ["publish", str(folder), "--bucket", bucket, "--promote", "--signing-key", key_id]
    assert main(argv) == 0
    assert "signed with" in capsys.readouterr().out
    make_holder(require=True)
    assert predict(lambda_context)[0] == 200


def test_cli_promote_refuses_a_version_whose_signature_does_not_verify(
    s3_endpoint, store, s3, bucket, key_id, signed_live, marker, capsys
):
    forge(s3, bucket, store, signed_live.version, marker)
    argv = ["promote", "--model", NAME, "--version", signed_live.version, "--bucket", bucket]
    assert main([*argv, "--signing-key", key_id]) == 1
    assert "vouches for another manifest" in capsys.readouterr().err


# --- names read from the registry ------------------------------------------------------------


def test_a_sha256_that_is_a_path_deletes_nothing_outside_the_cache(
    make_holder, store, s3, bucket, trained_dir, tmp_path, lambda_context
):
    """Found: a manifest sha256 of ../../x deleted a local file outside the cache (the cache
    file is <cache>/<sha256>.<format>, and a cached file that fails its check is deleted)."""
    manifest = store.publish(trained_dir)
    base = store.version_prefix(NAME, manifest.version)
    raw = json.loads(s3.get_object(Bucket=bucket, Key=base + "manifest.json")["Body"].read())
    raw["artifact"]["sha256"], raw["numpy_artifact"] = "../../x", None
    s3.put_object(Bucket=bucket, Key=base + "manifest.json", Body=json.dumps(raw).encode())
    alias = {"version": manifest.version, "sha256": "../../x", "numpy_sha256": ""}
    s3.put_object(Bucket=bucket, Key=store.alias_key(NAME, "live"), Body=json.dumps(alias))
    cache = tmp_path / "a" / "cache"
    outside = tmp_path / "x.joblib"  # <cache>/../../x.joblib
    outside.write_bytes(b"someone else's file")
    for version in ("", manifest.version):  # through the alias, and pinned
        make_holder(require=False, key="", model_format="joblib", version=version, cache_dir=cache)
        status, body = predict(lambda_context)
        assert status == 503 and body["error"]["code"] == "integrity_error", body
    assert outside.read_bytes() == b"someone else's file"


@pytest.mark.parametrize("alias", ["../../../../datasets/x", "a" * 2000])
def test_a_bad_alias_is_refused_and_nothing_is_written(
    s3_endpoint, store, s3, bucket, signed_live, capsys, alias
):
    argv = ["promote", "--model", NAME, "--version", signed_live.version, "--bucket", bucket]
    assert main([*argv, "--alias", alias]) == 1
    assert "error: invalid alias" in capsys.readouterr().err
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert not [key for key in listed if "aliases/" in key and not key.endswith("/live.json")]


def test_a_bad_alias_in_the_function_settings_answers_503(make_holder, signed_live, lambda_context):
    make_holder(require=False, alias="../../../../datasets/x")
    status, body = predict(lambda_context)
    assert status == 503 and body["error"]["code"] == "invalid_name"


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
