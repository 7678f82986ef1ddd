"""Signed manifests: who published a version, not only whether its files match its manifest.

A manifest's sha256s prove that the artifacts match the manifest, not who wrote it: the manifest
and the alias live in the same writable prefix, so whoever can write to models/ could rewrite a
pickle, its manifest and the alias together. So `publish` also signs a small attestation with an
asymmetric KMS key (ECC_NIST_P256, ECDSA_SHA_256) that only publishers may use (kms:Sign), and
serving and retraining verify it offline with the key's public part before they trust any sha256
in the manifest.

models/<name>/versions/<version>/attestation.json:
  {"key_id": <the KMS key's ARN>, "algorithm": "ECDSA_SHA_256",
   "message": <canonical JSON text>, "signature": <base64 of the DER signature>}
The message is canonical JSON (sorted keys, no spaces) of
  {"type": "sklambda.model-attestation/1", "name", "version", "manifest_sha256"}
signed with MessageType RAW (KMS hashes it with SHA-256 itself; RAW messages are capped at
4,096 bytes, which is why the manifest's sha256 is signed and not the manifest). The verifier
rebuilds the message from what it read (the name and version it asked for, the sha256 of the
manifest bytes it got) and requires the signed message to be exactly that, so a signature can
be moved neither to another manifest nor to another name or version.

Verification uses the pure-Python `ecdsa` package, imported only when a signature is checked: it
adds 0.6 MB to the layer where `cryptography` would add 14 MB (the layer's budget is 190 MiB;
figures in docs/signing.md). Verifying touches public data only, so the timing side channels of
pure-Python ECDSA *signing* do not apply; signing itself happens inside KMS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sklambda.errors import SignatureError
from sklambda.names import validate_name

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

ATTESTATION_FILE = "attestation.json"
ALGORITHM: Final = "ECDSA_SHA_256"
ATTESTATION_TYPE = "sklambda.model-attestation/1"


class Attestation(BaseModel):
    """What attestation.json holds. `key_id` is informational: the verifier uses its own
    configured key, never one the file names."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key_id: str = Field(max_length=2048)
    algorithm: Literal["ECDSA_SHA_256"]
    message: str = Field(max_length=4096)
    signature: str = Field(max_length=1024)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def attestation_message(name: str, version: str, manifest_sha256: str) -> bytes:
    """The exact bytes that are signed for one version's manifest."""
    fields = {
        "type": ATTESTATION_TYPE,
        "name": validate_name("model name", name),
        "version": validate_name("version", version),
        "manifest_sha256": validate_name("sha256", manifest_sha256),
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def manifest_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class Signer:
    """Signs attestations with one KMS key (the client is passed in)."""

    def __init__(self, kms: KMSClient, key_id: str) -> None:
        self.kms = kms
        self.key_id = key_id

    def sign(self, name: str, version: str, manifest_sha256: str) -> Attestation:
        message = attestation_message(name, version, manifest_sha256)
        try:
            reply = self.kms.sign(
                KeyId=self.key_id,
                Message=message,
                MessageType="RAW",
                SigningAlgorithm=ALGORITHM,
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise SignatureError(
                f"KMS could not sign with key {self.key_id}: {error.get('Code', '')} "
                f"{error.get('Message', '')}".strip(),
                "signing_failed",
            ) from None
        return Attestation(
            key_id=reply["KeyId"],
            algorithm=ALGORITHM,
            message=message.decode(),
            signature=base64.b64encode(reply["Signature"]).decode(),
        )


def load_public_key(der: bytes) -> Any:
    """An ecdsa VerifyingKey from a DER SubjectPublicKeyInfo (what KMS GetPublicKey returns);
    only a NIST P-256 key is accepted."""
    import ecdsa  # pure Python; imported only when a signature is to be checked

    try:
        key = ecdsa.VerifyingKey.from_der(der)
    except (ecdsa.der.UnexpectedDER, ecdsa.MalformedPointError, ValueError) as exc:
        raise SignatureError(f"the signing key's public part is not valid: {exc}") from None
    if key.curve != ecdsa.NIST256p:
        raise SignatureError(
            f"the signing key is on {key.curve.name}, not NIST P-256", "signing_key_unavailable"
        )
    return key


def signature_valid(public_key: Any, message: bytes, signature: bytes) -> bool:
    """Whether `signature` (DER, as KMS returns it) is public_key's ECDSA-SHA256 of `message`."""
    import ecdsa
    from ecdsa.util import sigdecode_der

    try:
        return bool(
            public_key.verify(signature, message, hashfunc=hashlib.sha256, sigdecode=sigdecode_der)
        )
    except (ecdsa.BadSignatureError, ecdsa.der.UnexpectedDER, ValueError):
        return False


class Verifier:
    """Checks attestations against one KMS key's public part, fetched with the first signature
    it checks and then kept for the life of the object (one per container).

    `require`: refuse a version without an attestation. Either way a version that has one is
    refused unless it verifies. With no key configured (local runs) and `require` false, there
    is nothing to check with: attestations are ignored, as an unsigned version would be loaded
    anyway. Calls are serialized by the caller (the model holder's lock)."""

    def __init__(
        self, key_id: str, require: bool, kms: Callable[[], KMSClient] | None = None
    ) -> None:
        self.key_id = key_id
        self.require = require
        self._kms = kms
        self._public_key: Any = None

    @property
    def enabled(self) -> bool:
        """Whether an attestation is worth reading at all."""
        return bool(self.key_id) or self.require

    def public_key(self) -> Any:
        if self._public_key is None:
            if self._kms is None:
                raise SignatureError("no KMS client to read the signing key with", "not_configured")
            try:
                reply = self._kms().get_public_key(KeyId=self.key_id)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                raise SignatureError(
                    f"cannot read the public key of signing key {self.key_id} ({code})",
                    "signing_key_unavailable",
                ) from None
            self._public_key = load_public_key(reply["PublicKey"])
        return self._public_key

    def check(
        self, name: str, version: str, manifest_sha256: str, attestation: bytes | None
    ) -> None:
        """Raise SignatureError unless this version may be trusted (see the class)."""
        where = f"{name} {version}"
        if self.require and not self.key_id:
            raise SignatureError(
                "REQUIRE_SIGNED_MODELS is true but no MODEL_SIGNING_KEY_ID is set", "not_configured"
            )
        if attestation is None:
            if self.require:
                raise SignatureError(
                    f"{where} is not signed (no {ATTESTATION_FILE}) and signed models are "
                    "required; refusing it",
                    "unsigned_model",
                )
            return
        if not self.key_id:
            return
        try:
            signed = Attestation.model_validate_json(attestation)
            signature = base64.b64decode(signed.signature, validate=True)
        except (ValidationError, binascii.Error, ValueError):
            raise SignatureError(f"{ATTESTATION_FILE} of {where} is not valid") from None
        message = signed.message.encode()
        if not signature_valid(self.public_key(), message, signature):
            raise SignatureError(
                f"{ATTESTATION_FILE} of {where} is not signed by key {self.key_id}; refusing it"
            )
        if message != attestation_message(name, version, manifest_sha256):
            raise SignatureError(
                f"{ATTESTATION_FILE} of {where} vouches for another manifest, name or version "
                f"(it signs {signed.message[:300]}); refusing it"
            )
