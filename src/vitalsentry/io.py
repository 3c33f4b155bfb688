"""Atomic file writes and hashing: nothing half-written survives a crash."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from vitalsentry.errors import VitalSentryError


class ManifestError(VitalSentryError):
    """A folder's files disagree with the sha256 list of its ``manifest.json``."""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_listed_files(root: Path, files: Any, unlisted: Collection[str]) -> None:
    """Check a folder against its manifest's ``files`` (name → sha256): one rule for all.

    Every listed file must be a plain name present with that sha256, and the folder may hold
    no other entry than those in ``unlisted`` (the manifest itself, a signature).

    Raises
    ------
    ManifestError
        One line naming the first file that is missing, altered or not listed.
    """
    if not isinstance(files, dict) or not files:
        raise ManifestError("manifest.json lists no files")
    for name, digest in files.items():
        file = root / name
        if name != Path(name).name or not file.is_file():
            raise ManifestError(f"file '{name}' listed in manifest.json is missing")
        if sha256_file(file) != digest:
            raise ManifestError(f"file '{name}' does not match its sha256 (altered or corrupt)")
    extra = sorted(p.name for p in root.iterdir() if p.name not in files and p.name not in unlisted)
    if extra:
        raise ManifestError(
            f"file '{extra[0]}' is not listed in manifest.json (foreign or tampered)"
        )


def _umask_mode() -> int:
    """File mode a plain ``open`` would give (``mkstemp`` makes files owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON (indented, keys in insertion order, NaN refused) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    Use for writers that need a file name (pandas, safetensors, skops). On error the
    temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; swap it into place on success.

    An existing folder at ``path`` is replaced only once the new one is complete; on
    error the temporary folder is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
