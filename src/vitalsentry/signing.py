"""Ed25519 signatures of model bundles (``cryptography``).

A bundle's ``manifest.json`` lists the sha256 of every other file, so signing the
manifest's bytes signs the whole bundle. The signature lives beside it in
``manifest.sig`` (JSON: algorithm, key id, base64 signature); any edit of the manifest
after signing, or of a file it lists, fails verification against the trusted public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vitalsentry.errors import BundleError, VitalSentryError
from vitalsentry.io import atomic_write_bytes

ALGORITHM: Final = "ed25519"
SIGNATURE_KEYS: Final = frozenset({"algorithm", "key_id", "signature"})


def key_id(public: Ed25519PublicKey) -> str:
    """Short public identifier of a key: 16 hex digits of the sha256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_signing_key(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new Ed25519 private key (PEM, owner-only) to ``out`` and its public key.

    Returns
    -------
    (Path, Path)
        The private key file and the public key file (``out`` + ``.pub``).

    Raises
    ------
    VitalSentryError
        ``out`` exists already (a key is never overwritten).
    """
    private_path, public_path = Path(out), Path(f"{out}.pub")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise VitalSentryError(f"{private_path}: exists already; choose another path") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(public_path, public)
    return private_path, public_path


def _read_key(path: Path, private: bool) -> Ed25519PrivateKey | Ed25519PublicKey:
    try:
        data = path.read_bytes()
        key: Any = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (OSError, ValueError, TypeError) as exc:
        kind = "private" if private else "public"
        raise VitalSentryError(
            f"{path}: not a readable {kind} key ({type(exc).__name__})"
        ) from None
    expected = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, expected):
        raise VitalSentryError(f"{path}: not an Ed25519 key")
    return key


def sign_manifest(manifest: bytes, key_path: str | os.PathLike[str]) -> bytes:
    """Return the contents of ``manifest.sig`` for these manifest bytes, signed by a key file."""
    key = _read_key(Path(key_path), private=True)
    assert isinstance(key, Ed25519PrivateKey)
    signature = base64.b64encode(key.sign(manifest)).decode()
    record = {"algorithm": ALGORITHM, "key_id": key_id(key.public_key()), "signature": signature}
    return (json.dumps(record, indent=2) + "\n").encode()


def verify_signature(root: Path, manifest: bytes, trusted: Sequence[Path]) -> str:
    """Check ``root/manifest.sig`` against the manifest bytes and the trusted public keys.

    Returns
    -------
    str
        The id of the key that signed it.

    Raises
    ------
    BundleError
        No trusted key given, no or malformed ``manifest.sig``, or a signature that no
        trusted key verifies (the manifest was edited after signing, or another key signed).
    """
    if not trusted:
        raise BundleError("a signed bundle is required but no trusted public key is given")
    keys = [_read_key(Path(p), private=False) for p in trusted]
    file = root / "manifest.sig"
    if not file.is_file():
        raise BundleError(f"bundle {root}: not signed (no manifest.sig; see `vitalsentry sign`)")
    try:
        record = json.loads(file.read_bytes())
        if not isinstance(record, dict) or set(record) != SIGNATURE_KEYS:
            raise ValueError("unexpected keys")
        if record["algorithm"] != ALGORITHM:
            raise ValueError(f"algorithm is not {ALGORITHM}")
        signature = base64.b64decode(str(record["signature"]), validate=True)
    except (OSError, ValueError, binascii.Error) as exc:
        raise BundleError(f"bundle {root}: manifest.sig is malformed ({exc})") from None
    for key in keys:
        assert isinstance(key, Ed25519PublicKey)
        try:
            key.verify(signature, manifest)
        except InvalidSignature:
            continue
        return key_id(key)
    raise BundleError(
        f"bundle {root}: manifest.sig does not verify under any trusted key (manifest edited "
        "after signing, or signed by another key)"
    )
