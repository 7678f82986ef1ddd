"""S3 model registry: immutable versions, verified uploads, aliases moved by conditional writes.

Layout under the bucket:
  models/<name>/versions/<version>/model.joblib, model.npz, report.html, attestation.json,
                                   manifest.json (never overwritten; attestation.json when
                                   signed, report.html when training wrote one)
  models/<name>/aliases/<alias>.json   {"version", "sha256", "numpy_sha256", "promoted_at", ...}
  models/<name>/runs/<run-id>.json     retrain run records
  datasets/<name>/*.csv                training data a retrain reads (one table, same header)
The client is passed in (boto3 honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, so the same code
talks to AWS or to a moto server).

Every name a key or a local path is built from (model, version, alias, run id, sha256, dataset
key) is checked against sklambda.names first, whether it came from the CLI, an event or the
registry itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from sklambda.data import Table, parse_csv
from sklambda.errors import (
    AliasConflictError,
    DataValidationError,
    IntegrityError,
    InvalidNameError,
    RegistryError,
    first_validation_error,
)
from sklambda.manifest import (
    MANIFEST_FILE,
    ArtifactInfo,
    Manifest,
    VerifiedFile,
    read_manifest,
    verify_file,
)
from sklambda.names import Sha256, Version, is_valid, validate_name
from sklambda.settings import DEFAULT_ALIAS
from sklambda.signing import ATTESTATION_FILE, Signer, Verifier, manifest_sha256

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HISTORY_LIMIT = 20
# The predict function's S3 client: boto3's defaults (60 s timeouts, up to 5 attempts) would let
# a hanging S3 hold a request for minutes. One retry, short timeouts: a cold start that cannot
# reach S3 answers 503 within 3 s (two timed-out reads plus the retry's jittered back-off of up
# to 1 s; benchmarks/bench_faults.py measures it). The read timeout bounds each socket read, not
# a whole download, so a large artifact still downloads.
SERVING_S3_CONFIG = Config(
    connect_timeout=0.5,
    read_timeout=0.8,
    retries={"mode": "standard", "total_max_attempts": 2},
)
DATASET_PREFIX = "datasets"
# What a browser or a download is told a version's file is (anything else: bytes).
CONTENT_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "png": "image/png",
    "svg": "image/svg+xml",
}


@dataclass(frozen=True)
class AliasRecord:
    alias: str
    version: str
    sha256: str
    promoted_at: str
    previous: str | None
    history: tuple[str, ...]
    etag: str = ""
    # sha256 of model.npz, the artifact that is served when it exists ("" when none);
    # None for alias records written before model.npz existed.
    numpy_sha256: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "sha256": self.sha256,
                "numpy_sha256": self.numpy_sha256,
                "promoted_at": self.promoted_at,
                "previous": self.previous,
                "history": list(self.history),
            },
            indent=2,
        )


class _AliasFile(BaseModel):
    """An alias object as read from S3: every name in it is checked (sklambda.names)."""

    version: Version
    sha256: Sha256
    numpy_sha256: Sha256 | Literal[""] | None = None
    promoted_at: str = ""
    previous: Version | None = None
    history: list[Version] | None = None


class ModelStore:
    """The registry for one bucket."""

    def __init__(self, s3: S3Client, bucket: str, prefix: str = "models") -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    # --- keys -----------------------------------------------------------------------------

    def version_prefix(self, name: str, version: str) -> str:
        name, version = validate_name("model name", name), validate_name("version", version)
        return f"{self.prefix}/{name}/versions/{version}/"

    def alias_key(self, name: str, alias: str) -> str:
        name, alias = validate_name("model name", name), validate_name("alias", alias)
        return f"{self.prefix}/{name}/aliases/{alias}.json"

    def run_key(self, name: str, run_id: str) -> str:
        name, run_id = validate_name("model name", name), validate_name("run id", run_id)
        return f"{self.prefix}/{name}/runs/{run_id}.json"

    @staticmethod
    def dataset_key(name: str, filename: str) -> str:
        return validate_name("dataset key", f"{DATASET_PREFIX}/{name}/{filename}")

    # --- publish --------------------------------------------------------------------------

    def publish(
        self,
        folder: Path,
        signer: Signer | None = None,
        extras: Mapping[str, Path] | None = None,
    ) -> Manifest:
        """Upload a trained artifact folder as a new immutable version, verified byte for byte,
        and signed (attestation.json) when a signer is given. `extras` (file name -> local
        path, e.g. {"report.html": ...}) are published into the version's folder too.

        The model goes first, then the extras, then the attestation, and the manifest last,
        each written only if absent. A version is complete only when all of them exist; the
        manifest is last because its presence is what marks a version as published (the check
        below, versions(), resolve), so a version that looks published is never waiting for
        its signature or its report, and nothing can overwrite it.
        """
        manifest = read_manifest(folder)  # its artifact keys are known file names, not paths
        for info in manifest.artifacts:
            verify_file(folder / info.key, manifest, info)
        extra_files = self._extra_files(manifest, extras or {})
        base = self.version_prefix(manifest.name, manifest.version)
        if self._exists(base + MANIFEST_FILE):
            raise RegistryError(
                f"version {manifest.version} of {manifest.name} already exists; versions are "
                "immutable (train again for a new version)",
                code="version_exists",
            )
        body = manifest.to_json().encode()
        # Signed before anything is uploaded: a key this caller may not use leaves no files.
        attestation = (
            signer.sign(manifest.name, manifest.version, manifest_sha256(body)) if signer else None
        )
        for info in manifest.artifacts:
            self._put_new(base + info.key, (folder / info.key).read_bytes())
            self._verify_remote(base + info.key, info)
        for name, content in extra_files.items():
            self._put_new(base + name, content)
            if self.s3.get_object(Bucket=self.bucket, Key=base + name)["Body"].read() != content:
                raise IntegrityError(f"upload of {base + name} does not match the local file")
        if attestation is not None:
            self._put_new(base + ATTESTATION_FILE, attestation.to_json().encode())
        self._put_new(base + MANIFEST_FILE, body)
        return manifest

    @staticmethod
    def _extra_files(manifest: Manifest, extras: Mapping[str, Path]) -> dict[str, bytes]:
        """Each extra file's bytes, read before anything is uploaded; its name must be a plain
        file name (sklambda.names) that is none of the version's own files."""
        reserved = {MANIFEST_FILE, ATTESTATION_FILE, *(info.key for info in manifest.artifacts)}
        out: dict[str, bytes] = {}
        for name, path in extras.items():
            validate_name("extra file", name)
            if name in reserved:
                raise InvalidNameError(f"invalid extra file {name!r}: the version's own file")
            out[name] = Path(path).read_bytes()
        return out

    def _put_new(self, key: str, body: bytes) -> None:
        suffix = key.rsplit(".", 1)[-1]
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                IfNoneMatch="*",
                ContentType=CONTENT_TYPES.get(suffix, "application/octet-stream"),
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise RegistryError(
                    f"{key} already exists; refusing to overwrite it", code="version_exists"
                ) from None
            raise

    def _verify_remote(self, key: str, info: ArtifactInfo) -> None:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        if len(body) != info.bytes or hashlib.sha256(body).hexdigest() != info.sha256:
            raise IntegrityError(f"upload of {key} does not match its manifest (size or sha256)")

    # --- read -----------------------------------------------------------------------------

    def manifest(self, name: str, version: str, verifier: Verifier | None = None) -> Manifest:
        """A version's manifest. With a verifier, its attestation is checked against the bytes
        read before anything in them is trusted (sklambda.signing)."""
        base = self.version_prefix(name, version)
        key = base + MANIFEST_FILE
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise RegistryError(
                    f"{name} has no version {version}", "version_not_found", 404
                ) from None
            raise self._denied_or(exc, key) from None
        if verifier is not None and verifier.enabled:
            attestation = self._read_if_present(base + ATTESTATION_FILE)
            verifier.check(name, version, manifest_sha256(body), attestation)
        manifest = Manifest.from_json(body, f"s3://{self.bucket}/{key}")
        if (manifest.name, manifest.version) != (name, version):
            raise IntegrityError(
                f"s3://{self.bucket}/{key} holds the manifest of {manifest.name} "
                f"{manifest.version}; refusing it"
            )
        return manifest

    def _read_if_present(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist. A 403 counts as absent: a role
        whose s3:ListBucket is limited to a prefix (the predict function's) gets 403, not 404,
        for a missing key. Safe for an attestation: absent is refused where one is required,
        and where it is not, a writer could have deleted it anyway."""
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "AccessDenied", "403"):
                return None
            raise
        return body

    def alias(self, name: str, alias: str) -> AliasRecord | None:
        key = self.alias_key(name, alias)
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._denied_or(exc, key) from None
        try:
            raw = _AliasFile.model_validate_json(obj["Body"].read())
        except ValidationError as exc:
            raise IntegrityError(
                f"alias object s3://{self.bucket}/{key} is not valid "
                f"({first_validation_error(exc)})"
            ) from None
        return AliasRecord(
            alias=alias,
            version=raw.version,
            sha256=raw.sha256,
            promoted_at=raw.promoted_at,
            previous=raw.previous,
            history=tuple(raw.history or ([raw.previous] if raw.previous else [])),
            etag=obj["ETag"],
            numpy_sha256=raw.numpy_sha256,
        )

    def resolve(
        self,
        name: str,
        alias: str = DEFAULT_ALIAS,
        version: str | None = None,
        verifier: Verifier | None = None,
    ) -> Manifest:
        """A pinned version, or the version an alias points to, as its manifest, verified by
        `verifier` (when given) before the alias's sha256s are compared with it."""
        if version:
            return self.manifest(name, version, verifier)
        record = self.alias(name, alias)
        if record is None:
            raise RegistryError(
                f"{name} has no alias {alias!r} (promote a version first)", "alias_not_found", 404
            )
        manifest = self.manifest(name, record.version, verifier)
        promised = [(record.sha256, manifest.artifact.sha256)]
        if record.numpy_sha256 is not None:
            promised.append((record.numpy_sha256, _numpy_sha256(manifest)))
        for expected, actual in promised:
            if expected != actual:
                raise IntegrityError(
                    f"alias {alias} of {name} promises sha256 {expected[:12] or '(none)'}… "
                    f"but version {record.version} has {actual[:12] or '(none)'}…"
                )
        return manifest

    def fetch(
        self,
        manifest: Manifest,
        dest_dir: Path,
        timings: dict[str, float] | None = None,
        info: ArtifactInfo | None = None,
    ) -> VerifiedFile:
        """Download an artifact (the pickle unless `info` names another) into
        dest_dir/<sha256>.<format>, verified; reuse a verified copy.

        `timings` (if given) receives fetch_ms and verify_ms.
        """
        info = info or manifest.artifact
        timings = {} if timings is None else timings
        started = time.perf_counter()
        # The cache file is named by the sha256: a name, never a path (checked again here, as a
        # Manifest can be built without validation).
        if info.format not in ("joblib", "npz"):
            raise IntegrityError(f"unknown artifact format {info.format[:20]!r}")
        target = dest_dir / f"{validate_name('sha256', info.sha256)}.{info.format}"
        dest_dir.mkdir(parents=True, exist_ok=True)
        if target.exists():
            timings["fetch_ms"] = 0.0
            try:
                verified = verify_file(target, manifest, info)
                timings["verify_ms"] = (time.perf_counter() - started) * 1000
                timings["cached"] = 1.0
                return verified
            except IntegrityError:
                target.unlink()
        key = self.version_prefix(manifest.name, manifest.version) + info.key
        fd, tmp = tempfile.mkstemp(dir=dest_dir, suffix=".part")
        os.close(fd)
        try:
            self.s3.download_file(self.bucket, key, tmp)
            downloaded = time.perf_counter()
            timings["fetch_ms"] = (downloaded - started) * 1000
            verify_file(Path(tmp), manifest, info)
            timings["verify_ms"] = (time.perf_counter() - downloaded) * 1000
            os.replace(tmp, target)  # a rename: the bytes just verified, now at their cache name
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return VerifiedFile(target, info)

    def versions(self, name: str) -> list[str]:
        """Published versions (those with a manifest), oldest first; a folder whose name is not
        a version (sklambda.names) is left out: it could never be read."""
        prefix = f"{self.prefix}/{validate_name('model name', name)}/versions/"
        found = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(prefix) :]
                if rest.endswith("/" + MANIFEST_FILE) and is_valid("version", rest.split("/")[0]):
                    found.add(rest.split("/", 1)[0])
        return sorted(found)

    def model_names(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "/", Delimiter="/"
        )
        return sorted(
            p["Prefix"][len(self.prefix) + 1 :].rstrip("/")
            for page in pages
            for p in page.get("CommonPrefixes", [])
        )

    # --- aliases --------------------------------------------------------------------------

    def promote(
        self,
        name: str,
        version: str,
        alias: str = DEFAULT_ALIAS,
        expected: AliasRecord | None | str = "read",
        verifier: Verifier | None = None,
    ) -> AliasRecord:
        """Point alias at version with one conditional PUT.

        `expected` is the alias record the caller decided on ("read" reads it now). The write
        succeeds only if the alias object is still that one (ETag match, or absent), so two
        concurrent promotions cannot both win. With a verifier, a version that the predict
        function would refuse (unsigned, or a bad signature) is not promoted.
        """
        self.alias_key(name, alias)  # a bad alias is refused before anything is read
        manifest = self.manifest(name, version, verifier)  # raises if there is no such version
        for info in manifest.artifacts:
            self._verify_remote(self.version_prefix(name, version) + info.key, info)
        current = self.alias(name, alias) if expected == "read" else expected
        assert not isinstance(current, str)
        history: tuple[str, ...] = ()
        if current is not None:
            history = ((current.version,) + current.history)[:HISTORY_LIMIT]
        return self._write_alias(name, alias, manifest, history, current)

    def rollback(
        self, name: str, alias: str = DEFAULT_ALIAS, verifier: Verifier | None = None
    ) -> AliasRecord:
        """Move the alias back to the version it pointed to before the last promotion."""
        current = self.alias(name, alias)
        if current is None or not current.history:
            raise RegistryError(
                f"alias {alias!r} of {name} has no previous version to roll back to",
                "nothing_to_roll_back",
                409,
            )
        target = self.manifest(name, current.history[0], verifier)
        return self._write_alias(name, alias, target, current.history[1:], current)

    def _write_alias(
        self,
        name: str,
        alias: str,
        manifest: Manifest,
        history: tuple[str, ...],
        current: AliasRecord | None,
    ) -> AliasRecord:
        record = AliasRecord(
            alias=alias,
            version=manifest.version,
            sha256=manifest.artifact.sha256,
            numpy_sha256=_numpy_sha256(manifest),
            promoted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            previous=history[0] if history else None,
            history=history,
        )
        condition: dict[str, str] = (
            {"IfMatch": current.etag} if current is not None else {"IfNoneMatch": "*"}
        )
        try:
            reply = self.s3.put_object(
                Bucket=self.bucket,
                Key=self.alias_key(name, alias),
                Body=record.to_json().encode(),
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise AliasConflictError(
                    f"alias {alias!r} of {name} changed while this promotion ran; not moved"
                ) from None
            raise
        return AliasRecord(**{**record.__dict__, "etag": reply["ETag"]})

    # --- datasets -------------------------------------------------------------------------

    def dataset_keys(self, name: str) -> list[str]:
        prefix = f"{DATASET_PREFIX}/{validate_name('model name', name)}/"
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            keys += [
                o["Key"] for o in page.get("Contents", []) if o["Key"].lower().endswith(".csv")
            ]
        return sorted(keys)

    def dataset(self, name: str, key: str | None = None) -> Table:
        """One table from one key, or from every CSV under datasets/<name>/ (same header each)."""
        folder = f"{DATASET_PREFIX}/{validate_name('model name', name)}/"
        if key and not validate_name("dataset key", key).startswith(folder):
            raise InvalidNameError(f"dataset key {key!r} is not under {folder}")
        keys = [key] if key else self.dataset_keys(name)
        if not keys:
            raise DataValidationError(
                f"no CSV files under s3://{self.bucket}/{DATASET_PREFIX}/{name}/"
            )
        tables = [
            parse_csv(
                self.s3.get_object(Bucket=self.bucket, Key=k)["Body"].read(),
                f"s3://{self.bucket}/{k}",
            )
            for k in keys
        ]
        if len(tables) == 1:
            return tables[0]
        header = list(tables[0].columns)
        for table in tables[1:]:
            if list(table.columns) != header:
                raise DataValidationError(
                    f"{table.source} has columns {list(table.columns)}, but {tables[0].source} "
                    f"has {header}; every CSV under one dataset needs the same header"
                )
        columns: dict[str, list[Any]] = {column: [] for column in header}
        for table in tables:
            for column in header:
                columns[column] += table.columns[column]
        digest = hashlib.sha256("".join(t.sha256 for t in tables).encode()).hexdigest()
        source = f"s3://{self.bucket}/{DATASET_PREFIX}/{name}/ ({len(tables)} files)"
        return Table(columns, sum(t.rows for t in tables), source, digest)

    # --- run records ----------------------------------------------------------------------

    def put_json(self, key: str, payload: dict[str, Any]) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(payload, indent=2, default=str).encode(),
            ContentType="application/json",
        )

    def _denied_or(self, exc: ClientError, key: str) -> Exception:
        # Without an unconditioned s3:ListBucket, S3 answers 403 rather than 404 for a key that
        # does not exist; say so instead of leaving a bare AccessDenied in the logs.
        if _code(exc) in ("AccessDenied", "403"):
            return RegistryError(
                f"access denied reading s3://{self.bucket}/{key} (it may not exist: a role "
                "without s3:ListBucket on the bucket gets 403 instead of 404)",
                "access_denied",
                403,
            )
        return exc

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise


def _numpy_sha256(manifest: Manifest) -> str:
    return manifest.numpy_artifact.sha256 if manifest.numpy_artifact else ""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
