"""Ed25519 keys and signatures (the `cryptography` package): keygen, sign a manifest, check one.

A bundle's ``signature.json`` holds the signature over the exact bytes of ``manifest.json`` and
the raw public key that made it; the manifest holds the sha256 of every other member, so one
signature covers the whole bundle. The key inside the bundle only proves integrity; authorship
needs the vendor's published public key (``conformance verify --public-key``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from conformance.certify.interface import KeyFileError

ALGORITHM = "Ed25519"


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    fingerprint: str  # sha256 of the raw public key, hex


class SignatureInvalid(ValueError):
    """The signature document is malformed or does not verify."""


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()


def generate(
    private_path: Path, public_path: Path | None = None, overwrite: bool = False
) -> KeyPair:
    """Write a new private key (PKCS#8 PEM, mode 0600) and its public key (PEM) beside it."""
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path else private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise KeyFileError(f"{path} exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_pem)
        public_path.write_bytes(public_pem)
    except OSError as error:
        raise KeyFileError(f"cannot write the key pair: {error}") from error
    return KeyPair(private_path, public_path, fingerprint(key.public_key()))


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({error})") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as error:
        raise KeyFileError(f"{path}: not a PEM public key ({error})") from error
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}, not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, signed_member: str, data: bytes) -> dict[str, Any]:
    public = key.public_key()
    return {
        "algorithm": ALGORITHM,
        "signed_member": signed_member,
        "public_key": base64.b64encode(raw_public(public)).decode("ascii"),
        "public_key_sha256": fingerprint(public),
        "signature": base64.b64encode(key.sign(data)).decode("ascii"),
    }


def _b64(document: dict[str, Any], field: str, length: int) -> bytes:
    value = document.get(field)
    if not isinstance(value, str):
        raise SignatureInvalid(f"{field} is missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SignatureInvalid(f"{field} is not base64") from error
    if len(raw) != length:
        raise SignatureInvalid(f"{field} is {len(raw)} bytes, not {length}")
    return raw


def check(document: Any, data: bytes, trusted: Ed25519PublicKey | None = None) -> str:
    """Verify the signature over ``data``; returns the signing key's fingerprint.

    With ``trusted``, the bundle must be signed by exactly that key.
    """
    if not isinstance(document, dict) or document.get("algorithm") != ALGORITHM:
        raise SignatureInvalid(f"not an {ALGORITHM} signature document")
    embedded = Ed25519PublicKey.from_public_bytes(_b64(document, "public_key", 32))
    signature = _b64(document, "signature", 64)
    if trusted is not None and raw_public(trusted) != raw_public(embedded):
        raise SignatureInvalid(
            f"signed by key sha256:{fingerprint(embedded)[:16]}, not by the trusted key "
            f"sha256:{fingerprint(trusted)[:16]}"
        )
    try:
        embedded.verify(signature, data)
    except InvalidSignature as error:
        raise SignatureInvalid("the signature does not match manifest.json") from error
    return fingerprint(embedded)
