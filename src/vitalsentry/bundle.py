"""The model bundle: one directory holding everything a trained pipeline needs.

Layout (DESIGN §6)::

    manifest.json        format, library versions, config, feature names, training data
                         fingerprint and notes, metrics, parent hash, sha256 of every file
    <stage files>        each stage's own files (:data:`vitalsentry.stages.STAGES`: scaler,
                         encoder/decoder weights and curve, detector, alarm policy, fusion)

This module is the one place bundles are written (:func:`save_stages`, :class:`BundleWriter`)
and verified (:func:`load_bundle`); what each file holds and how it is checked is declared by
its stage.

Nothing is ever loaded with pickle, joblib or a whole-object ``torch.load``: weights are
safetensors, the rest JSON (or skops with an explicit trusted-types list, by its owner).
Bundles are written into a temporary folder and swapped in atomically.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import safetensors
import safetensors.torch
import sklearn
import skops.io as sio
import torch
from torch import Tensor

from vitalsentry import __version__
from vitalsentry.config import ModelConfig, PipelineConfig
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.errors import BundleError, VitalSentryError
from vitalsentry.io import (
    ManifestError,
    atomic_dir,
    atomic_write_bytes,
    sha256_file,
    verify_listed_files,
)
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.signing import sign_manifest, verify_signature
from vitalsentry.stages import CURVE as CURVE
from vitalsentry.stages import DECODER, ENCODER, SCALER, STAGES, Stages, weight_configs

FORMAT = "vitalsentry-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
"""Optional Ed25519 signature of ``manifest.json`` (:mod:`vitalsentry.signing`)."""
REQUIRED_FILES = (ENCODER, DECODER, SCALER)
REQUIRED_KEYS = ("config", "feature_names")
UNLISTED = frozenset({MANIFEST, SIGNATURE})
"""The only files a bundle holds that ``manifest.json`` does not list (hidden ones included)."""
SCORING_SECTIONS = ("data", "window", "model")
"""Config sections that must be given in full: they decide how readings are scored."""


def _versions() -> dict[str, str]:
    return {
        "vitalsentry": __version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def _major_minor(version: str) -> tuple[int, ...]:
    """``"1.9.1"`` → (1, 9); non-numeric parts are dropped (``"2.13.0+cpu"`` → (2, 13))."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _check_name(name: str) -> None:
    if not name or name != Path(name).name or name.startswith(".") or name == MANIFEST:
        raise BundleError(
            f"bundle file name {name!r}: must be a plain file name other than {MANIFEST}"
        )


def manifest_sha256(path: str | Path) -> str:
    """Return the sha256 of a bundle's ``manifest.json`` (its identity, e.g. as a parent)."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise BundleError(f"{path}: not a model bundle (no {MANIFEST})")
    return sha256_file(file)


class BundleWriter:
    """Write a bundle atomically (:func:`save_stages` is the usual caller).

    Use as a context manager. Files are written into a temporary folder; on a clean exit
    the manifest (with the sha256 of every file) is written and the folder replaces
    ``out`` in one rename; on an exception nothing at ``out`` changes.

    Parameters
    ----------
    out : path
        Bundle directory to create or replace.

    Attributes
    ----------
    manifest : dict
        Manifest to fill in (``config``, ``feature_names``, ``data``, ``metrics`` …);
        ``format``, ``versions``, ``created`` and ``files`` are set on exit.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.manifest: dict[str, Any] = {}
        self._stack = contextlib.ExitStack()
        self._dir: Path | None = None

    @property
    def folder(self) -> Path:
        """The temporary folder being filled (only inside the ``with`` block)."""
        if self._dir is None:
            raise VitalSentryError(
                "BundleWriter: use it as a context manager (with BundleWriter(...) as w)"
            )
        return self._dir

    def __enter__(self) -> Self:
        self._dir = self._stack.enter_context(atomic_dir(self.out))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self._finish()
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        finally:
            self._dir = None
        self._stack.__exit__(exc_type, exc, tb)

    def _finish(self) -> None:
        folder = self.folder
        files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
        missing = [f for f in REQUIRED_FILES if f not in files] + [
            k for k in REQUIRED_KEYS if k not in self.manifest
        ]
        if missing:
            raise BundleError(f"bundle {self.out}: cannot save without {', '.join(missing)}")
        manifest = {
            "format": FORMAT,
            "versions": _versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **{
                k: v for k, v in self.manifest.items() if k not in ("format", "versions", "created")
            },
            "files": {name: sha256_file(folder / name) for name in files},
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")

    def put_tensors(self, name: str, tensors: Mapping[str, Tensor]) -> None:
        """Save a state dict as safetensors (moved to CPU, made contiguous)."""
        _check_name(name)
        state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        safetensors.torch.save_file(state, str(self.folder / name))

    def put_json(self, name: str, obj: Any) -> None:
        """Save a JSON-ready object (NaN refused)."""
        _check_name(name)
        (self.folder / name).write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")

    def put_file(self, name: str, write: Callable[[Path], None]) -> None:
        """Save a file written by ``write(path)`` (e.g. a skops dump of a detector)."""
        _check_name(name)
        write(self.folder / name)


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk.

    Attributes
    ----------
    path : Path
        Bundle directory.
    manifest : dict
        Parsed ``manifest.json``.
    config : PipelineConfig
        Every config the bundle was made with.
    scaler : ChannelScaler
        Scaler of the training data.
    feature_names : tuple of str
        Window channels the model expects, in order.
    manifest_sha256 : str
        sha256 of the ``manifest.json`` bytes that were loaded (the bundle's identity,
        recorded as ``parent`` by fine-tuning).
    """

    path: Path
    manifest: dict[str, Any]
    config: PipelineConfig
    scaler: ChannelScaler
    feature_names: tuple[str, ...]
    manifest_sha256: str

    def has(self, name: str) -> bool:
        """Whether the bundle lists the file ``name``."""
        return name in self.manifest["files"]

    def path_of(self, name: str) -> Path:
        """Return the path of a listed file (verified at load time)."""
        if not self.has(name):
            raise BundleError(f"bundle {self.path}: has no file '{name}'")
        return self.path / name

    def read_json(self, name: str) -> Any:
        """Parse a listed JSON file."""
        try:
            return json.loads(self.path_of(name).read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(f"bundle {self.path}: cannot read '{name}': {exc}") from None

    def read_tensors(self, name: str) -> dict[str, Tensor]:
        """Load a listed safetensors file onto the CPU."""
        try:
            return safetensors.torch.load_file(str(self.path_of(name)), device="cpu")
        except (OSError, ValueError, RuntimeError, safetensors.SafetensorError) as exc:
            raise BundleError(f"bundle {self.path}: cannot read '{name}': {exc}") from None

    def autoencoder(self, config: ModelConfig | None = None, prefix: str = "") -> Autoencoder:
        """Build an autoencoder and load its weights (strict), in eval mode.

        Parameters
        ----------
        config : ModelConfig, optional
            Architecture; default the bundle's own model config.
        prefix : str, default ""
            File-name prefix of a second model in the bundle (e.g. ``"resp_"``).
        """
        model = Autoencoder(self.config.model if config is None else config)
        for module, name in ((model.encoder, prefix + ENCODER), (model.decoder, prefix + DECODER)):
            try:
                module.load_state_dict(self.read_tensors(name), strict=True)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0]
                raise BundleError(
                    f"bundle {self.path}: '{name}' does not fit the model config ({first})"
                ) from None
        return model.eval()


def _verify_files(root: Path, files: Any) -> None:
    try:
        verify_listed_files(root, files, UNLISTED)
    except ManifestError as exc:
        raise BundleError(f"bundle {root}: {exc}") from None
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(f"bundle {root}: required file '{name}' is not listed in {MANIFEST}")


def _verify_versions(root: Path, manifest: dict[str, Any]) -> None:
    versions = manifest.get("versions")
    if not isinstance(versions, dict) or "vitalsentry" not in versions:
        raise BundleError(f"bundle {root}: {MANIFEST} has no library versions")
    made = str(versions["vitalsentry"])
    if _major_minor(made) > _major_minor(__version__):
        raise BundleError(
            f"bundle {root}: made by vitalsentry {made}, newer than this {__version__}; upgrade vitalsentry"
        )
    skops_files = [n for n in manifest["files"] if n.endswith(".skops")]
    made_sk = str(versions.get("sklearn", "?"))
    if skops_files and _major_minor(made_sk) != _major_minor(sklearn.__version__):
        raise BundleError(
            f"bundle {root}: '{skops_files[0]}' was saved with scikit-learn {made_sk}, "
            f"this is {sklearn.__version__}; refit it or install scikit-learn {made_sk}"
        )


def load_bundle(path: str | Path, *, trusted_keys: Sequence[Path] | None = None) -> Bundle:
    """Open a bundle after checking its format, versions, every file's sha256 and content.

    Parameters
    ----------
    path : path
        Bundle directory.
    trusted_keys : sequence of path, optional
        Ed25519 public keys (PEM); when given, ``manifest.sig`` must be a valid signature
        of ``manifest.json`` by one of them.

    Returns
    -------
    Bundle
        The verified bundle (weights are read on demand).

    Raises
    ------
    BundleError
        Not a bundle, unknown format version, a missing, extra or altered file, a bundle
        from a newer vitalsentry, a file whose content is malformed or disagrees with the
        config (see :func:`verify_content`), or a missing or wrong signature; the
        message is one line naming the file.
    """
    root = Path(path)
    file = root / MANIFEST
    if not file.is_file():
        raise BundleError(f"{root}: not a model bundle (no {MANIFEST})")
    try:
        raw = file.read_bytes()
        manifest = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise BundleError(f"bundle {root}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(
            f"bundle {root}: format {found!r} is not {FORMAT!r}; re-create it with this version"
        )
    _verify_files(root, manifest.get("files"))
    _verify_versions(root, manifest)
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"bundle {root}: {MANIFEST} lacks {', '.join(missing)}")
    if trusted_keys is not None:
        verify_signature(root, raw, trusted_keys)
    try:
        config = _manifest_config(manifest)
        scaler = ChannelScaler.from_dict(json.loads((root / SCALER).read_text()))
    except (VitalSentryError, ValueError, TypeError) as exc:
        raise BundleError(f"bundle {root}: invalid config or '{SCALER}' ({exc})") from None
    names = manifest["feature_names"]
    if (
        not isinstance(names, list)
        or tuple(names) != config.data.feature_names
        or scaler.feature_names != tuple(names)
        or len(names) != config.model.input_channels
    ):
        raise BundleError(
            f"bundle {root}: feature names disagree with the data config, '{SCALER}' or the "
            f"model's {config.model.input_channels} input channels"
        )
    if config.window.length != config.model.seq_len:
        raise BundleError(
            f"bundle {root}: window length {config.window.length} is not the model's "
            f"{config.model.seq_len} steps"
        )
    verify_content(root, manifest, config)
    return Bundle(
        root.resolve(), manifest, config, scaler, tuple(names), hashlib.sha256(raw).hexdigest()
    )


# ---- content verification ------------------------------------------------------------------


def _manifest_config(manifest: dict[str, Any]) -> PipelineConfig:
    """Parse the manifest's config: every section present, the scoring ones in full."""
    raw = manifest["config"]
    if not isinstance(raw, dict):
        raise BundleError("config is not an object")
    config = PipelineConfig.from_dict(raw)
    full = config.to_dict()
    missing = [name for name in full if name not in raw] or [
        f"{section}.{key}"
        for section in SCORING_SECTIONS
        for key in full[section]
        if key not in raw[section]
    ]
    if missing:
        raise BundleError(f"config lacks {missing[0]}")
    return config


JSON_SCHEMAS: dict[str, Callable[[Any], object]] = {
    name: check for kind in STAGES.values() for name, check in kind.json_checks.items()
}
"""Validator of each JSON file a bundle may hold, from its stage; another JSON file must
still parse."""


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _model_configs(
    root: Path, files: Mapping[str, str], config: PipelineConfig
) -> dict[str, ModelConfig]:
    """Architecture of each weights file the bundle must hold in a known shape."""
    return weight_configs(
        config, lambda name: name in files, lambda name: _strict_json((root / name).read_text())
    )


def _expected_shapes(config: ModelConfig, name: str) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the encoder or decoder of ``config`` (built without memory)."""
    with torch.device("meta"):
        model = Autoencoder(config)
    part = model.encoder if name.endswith(ENCODER) else model.decoder
    return {key: tuple(value.shape) for key, value in part.state_dict().items()}


def _check_tensors(file: Path, expected: dict[str, tuple[int, ...]] | None) -> None:
    """Parse a safetensors header; compare its tensors with ``expected`` (name → shape)."""
    try:
        with safetensors.safe_open(str(file), framework="pt") as handle:
            found = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
            dtypes = {handle.get_slice(key).get_dtype() for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own SafetensorError on a bad header
        raise BundleError(f"not a readable safetensors file ({type(exc).__name__})") from None
    if not dtypes <= {"F32", "F16", "BF16", "F64"}:
        raise BundleError(f"tensors of type {sorted(dtypes)}; expected floating point")
    if expected is not None and found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(
            k for k in found if found[k] != expected[k]
        )
        raise BundleError(f"tensor '{wrong[0]}' does not fit the model config")


def _check_file(root: Path, name: str, models: Mapping[str, ModelConfig]) -> None:
    """Parse and validate one listed file by its type (and name)."""
    file = root / name
    if name.endswith(".safetensors"):
        config = models.get(name)
        _check_tensors(file, None if config is None else _expected_shapes(config, name))
    elif name.endswith(".json"):
        try:
            obj = _strict_json(file.read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(f"not valid JSON ({exc})") from None
        JSON_SCHEMAS.get(name, lambda _: None)(obj)
    elif name.endswith(".skops"):
        try:
            sio.get_untrusted_types(file=file)
        except Exception as exc:  # skops raises many types on a corrupt archive
            raise BundleError(f"not a readable skops file ({type(exc).__name__})") from None
    else:
        raise BundleError("a bundle holds only .safetensors, .json and .skops files")


def verify_content(root: Path, manifest: dict[str, Any], config: PipelineConfig) -> None:
    """Parse and validate every listed file, beyond its sha256.

    Weights: safetensors headers, and the encoder and decoder tensors (the respiratory
    ones too) in the shapes the config's architecture has. JSON: strict JSON, and each
    known file against its schema (:data:`JSON_SCHEMAS`). skops: a readable archive.

    Raises
    ------
    BundleError
        One line naming the file and what is wrong with it.
    """
    files = manifest["files"]
    try:
        models = _model_configs(root, files, config)
    except (VitalSentryError, ValueError, TypeError, KeyError) as exc:
        raise BundleError(f"bundle {root}: {exc}") from None
    for name in files:
        try:
            _check_file(root, name, models)
        except (VitalSentryError, ValueError, TypeError) as exc:
            raise BundleError(f"bundle {root}: '{name}' is malformed ({exc})") from None


def sign_bundle(path: str | Path, key: str | os.PathLike[str]) -> Path:
    """Verify a bundle, then sign its ``manifest.json`` with an Ed25519 private key.

    Returns
    -------
    Path
        The signature file written (``manifest.sig``, replaced atomically).

    Raises
    ------
    BundleError
        The bundle does not verify.
    VitalSentryError
        The key cannot be read or is not Ed25519.
    """
    bundle = load_bundle(path)
    raw = (bundle.path / MANIFEST).read_bytes()
    if hashlib.sha256(raw).hexdigest() != bundle.manifest_sha256:
        raise BundleError(f"bundle {bundle.path}: {MANIFEST} changed while signing")
    out = bundle.path / SIGNATURE
    atomic_write_bytes(out, sign_manifest(raw, key))
    return out


def save_stages(stages: Stages, out: str | Path) -> Path:
    """Write a composition of stages as a bundle at ``out`` (atomically); return ``out``.

    Each stage puts its own files; the manifest is the composition's record.
    """
    with BundleWriter(out) as writer:
        writer.manifest.update(copy.deepcopy(stages.record))
        for stage in stages.parts.values():
            stage.save(writer)
    return Path(out)


def load_stages(path: str | Path, *, trusted_keys: Sequence[Path] | None = None) -> Stages:
    """Verify a bundle (see :func:`load_bundle`) and load every stage it holds."""
    return Stages.load(load_bundle(path, trusted_keys=trusted_keys))
