"""The bundle-tampering matrix against ``serve`` (its load path) and ``score``, and signing.

Every tampered bundle has its hashes updated, so only content checks can catch it; each
must be refused with one line on stderr and exit status 2, by both commands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from service_data import make_readings
from vitalsentry import cli
from vitalsentry.bundle import MANIFEST, load_bundle, load_stages, save_stages, sign_bundle
from vitalsentry.io import sha256_file
from vitalsentry.serve import app as app_module
from vitalsentry.signing import generate_signing_key
from vitalsentry.stages import ALARM_FILE, CALIBRATION_FILE, FUSION_META

Edit = Callable[[Path], None]


def manifest_of(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / MANIFEST).read_text())


def write_manifest(bundle: Path, manifest: dict[str, Any]) -> None:
    manifest["files"] = {name: sha256_file(bundle / name) for name in manifest["files"]}
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def rewrite(name: str, data: bytes | Callable[[bytes], bytes]) -> Edit:
    """Replace a listed file's bytes, then update its hash in the manifest."""

    def edit(bundle: Path) -> None:
        file = bundle / name
        file.write_bytes(data(file.read_bytes()) if callable(data) else data)
        write_manifest(bundle, manifest_of(bundle))

    return edit


def add_listed(name: str, data: bytes) -> Edit:
    def edit(bundle: Path) -> None:
        (bundle / name).write_bytes(data)
        manifest = manifest_of(bundle)
        manifest["files"][name] = ""
        write_manifest(bundle, manifest)

    return edit


def in_manifest(change: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(bundle: Path) -> None:
        manifest = manifest_of(bundle)
        change(manifest)
        write_manifest(bundle, manifest)

    return edit


def put(path: str, data: bytes = b"x") -> Edit:
    return lambda bundle: (bundle / path).write_bytes(data)


def _policy(extra: dict[str, Any]) -> bytes:
    policy = {"policy": {"k": 3, "n": 4, "clear_after": 4}, "chosen_on": "default"}
    return json.dumps(policy | extra).encode()


RANDOM = bytes(range(256)) * 40
MATRIX: dict[str, tuple[Edit, str]] = {
    "encoder truncated": (
        rewrite("encoder.safetensors", lambda b: b[: len(b) // 2]),
        "'encoder.safetensors' is malformed",
    ),
    "encoder random": (
        rewrite("encoder.safetensors", RANDOM),
        "'encoder.safetensors' is malformed",
    ),
    "decoder empty": (rewrite("decoder.safetensors", b""), "'decoder.safetensors' is malformed"),
    "alarm policy {}": (add_listed(ALARM_FILE, b"{}"), "'alarm_policy.json' is malformed"),
    "alarm policy unknown key": (
        add_listed(ALARM_FILE, _policy({"x": 1})),
        "'alarm_policy.json' is malformed",
    ),
    "alarm policy k > n": (
        add_listed(ALARM_FILE, _policy({"policy": {"k": 5, "n": 4, "clear_after": 4}})),
        "'alarm_policy.json' is malformed",
    ),
    "fusion.json {x: 1}": (add_listed(FUSION_META, b'{"x": 1}'), "'fusion.json' is malformed"),
    "calibration {}": (rewrite(CALIBRATION_FILE, b"{}"), "'calibration.json' is malformed"),
    "calibration NaN": (
        rewrite(CALIBRATION_FILE, lambda b: b.replace(b'"low": ', b'"low": NaN, "x": ', 1)),
        "'calibration.json' is malformed",
    ),
    "scaler not JSON": (rewrite("scaler.json", b"{"), "scaler.json"),
    "detector random": (rewrite("detector.skops", RANDOM), "'detector.skops' is malformed"),
    "config.model deleted": (in_manifest(lambda m: m["config"].pop("model")), "config lacks model"),
    "data.max_gap_s deleted": (
        in_manifest(lambda m: m["config"]["data"].pop("max_gap_s")),
        "config lacks data.max_gap_s",
    ),
    "window.length edited": (
        in_manifest(lambda m: m["config"]["window"].update(length=128)),
        "window length 128 is not the model's 64",
    ),
    "model.lstm_hidden edited": (
        in_manifest(lambda m: m["config"]["model"].update(lstm_hidden=12)),
        "does not fit the model config",
    ),
    "feature names edited": (
        in_manifest(
            lambda m: m.update(feature_names=["spo2", "heart_rate", "hour_sin", "hour_cos"])
        ),
        "feature names disagree",
    ),
    "hidden .evil.pkl": (put(".evil.pkl"), "'.evil.pkl' is not listed"),
    "unlisted extra.json": (put("extra.json", b"{}"), "'extra.json' is not listed"),
    "folder inside": (lambda b: (b / "sub").mkdir(), "'sub' is not listed"),
    "listed evil.pkl": (add_listed("evil.pkl", b"\x80\x04."), "holds only .safetensors"),
    "changed byte, hash kept": (
        lambda b: (b / "scaler.json").write_text((b / "scaler.json").read_text() + " "),
        "does not match its sha256",
    ),
    "manifest not JSON": (put(MANIFEST, b"{"), "is not valid JSON"),
    "manifest deleted": (lambda b: (b / MANIFEST).unlink(), "not a model bundle"),
}


@pytest.fixture(scope="module")
def readings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tidy.csv"
    pd.DataFrame([{"patient_id": "p", **r} for r in make_readings(200)]).to_csv(path, index=False)
    return path


@pytest.fixture
def fresh(bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI in-process (as the console script does); exit status and stderr."""
    sys.argv = ["vitalsentry", *argv]
    try:
        cli.main()
        status = 0
    except SystemExit as ended:
        status = int(ended.code or 0)
    return status, capsys.readouterr().err


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` stops before listening: a bundle that passes gets exit 3 here."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise SystemExit(3)

    monkeypatch.setattr(app_module.uvicorn, "run", refuse)
    monkeypatch.setenv("VITALSENTRY_REQUIRE_API_KEY", "false")
    # `serve` hands its bundle and trust settings to uvicorn's workers through the
    # environment: recorded here so that they are removed after the test.
    for name in ("BUNDLE", "REQUIRE_SIGNATURE", "SIGNING_PUBLIC_KEYS", "TORCH_THREADS"):
        monkeypatch.setenv(f"VITALSENTRY_{name}", "")
        monkeypatch.delenv(f"VITALSENTRY_{name}")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))


def commands(bundle: Path, data: Path, out: Path) -> dict[str, list[str]]:
    return {
        "serve": ["serve", "--bundle", str(bundle)],
        "score": ["score", str(bundle), str(data), "--out", str(out / "scores.csv")],
    }


@pytest.mark.parametrize("case", list(MATRIX))
@pytest.mark.usefixtures("no_server")
def test_each_tampering_is_refused_in_one_line_by_serve_and_score(
    case: str,
    fresh: Path,
    readings_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    edit, expected = MATRIX[case]
    edit(fresh)
    for argv in commands(fresh, readings_csv, tmp_path).values():
        status, err = run_cli(argv, capsys)
        assert status == 2, (argv[0], err)
        assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, (
            argv[0],
            err,
        )


@pytest.mark.usefixtures("no_server")
def test_the_untouched_bundle_passes_both(
    fresh: Path, readings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serve, score = commands(fresh, readings_csv, tmp_path).values()
    assert run_cli(serve, capsys)[0] == 3  # verified, self-checked, reached the server
    assert run_cli(score, capsys)[0] == 0 and (tmp_path / "scores.csv").is_file()


def test_the_console_script_refuses_in_one_line(fresh: Path, readings_csv: Path) -> None:
    rewrite("encoder.safetensors", RANDOM)(fresh)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitalsentry.cli",
            "score",
            str(fresh),
            str(readings_csv),
            "--out",
            "x.csv",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


# --- signatures ----------------------------------------------------------------------------


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path]:
    return generate_signing_key(tmp_path / "keys" / "signing.pem")


@pytest.mark.usefixtures("no_server")
def test_a_signed_bundle_is_served_and_an_edited_one_refused(
    fresh: Path,
    readings_csv: Path,
    tmp_path: Path,
    signer: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = signer
    assert run_cli(["sign", str(fresh), "--key", str(private)], capsys)[0] == 0
    trust = ["--require-signature", "--trusted-key", str(public)]
    serve, score = commands(fresh, readings_csv, tmp_path).values()
    assert run_cli([*serve, *trust], capsys)[0] == 3
    assert run_cli([*score, *trust], capsys)[0] == 0
    in_manifest(lambda m: m["metrics"].update(faked=1.0))(fresh)  # edited after signing
    for argv in (serve, score):
        status, err = run_cli([*argv, *trust], capsys)
        assert status == 2 and err.count("\n") == 1 and "does not verify" in err


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        (lambda bundle, other: None, "not signed"),
        (lambda bundle, other: sign_bundle(bundle, other), "does not verify"),
        (lambda bundle, other: (bundle / "manifest.sig").write_text("{}"), "malformed"),
    ],
)
def test_unsigned_or_foreign_signatures_are_refused(
    fresh: Path,
    tmp_path: Path,
    signer: tuple[Path, Path],
    prepare: Callable[[Path, Path], object],
    expected: str,
) -> None:
    other, _ = generate_signing_key(tmp_path / "other.pem")
    prepare(fresh, other)
    with pytest.raises(Exception, match=expected):
        load_bundle(fresh, trusted_keys=[signer[1]])
    load_bundle(fresh)  # without a signature requirement the bundle still loads


def test_a_new_bundle_from_a_signed_base_is_unsigned(
    fresh: Path, tmp_path: Path, signer: tuple[Path, Path]
) -> None:
    sign_bundle(fresh, signer[0])
    save_stages(load_stages(fresh), tmp_path / "child")
    assert not (tmp_path / "child" / "manifest.sig").exists()


def test_signing_keys_are_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "k.pem"
    assert run_cli(["sign-keygen", "--out", str(key)], capsys)[0] == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    status, err = run_cli(["sign-keygen", "--out", str(key)], capsys)
    assert status == 2 and "exists already" in err


def test_archive_scoring_checks_the_signature_once_before_any_partition(
    fresh: Path,
    readings_csv: Path,
    tmp_path: Path,
    signer: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = signer
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "part-0.csv").write_bytes(readings_csv.read_bytes())
    argv = ["score", str(fresh), str(archive), "--out", str(tmp_path / "scored")]
    trust = ["--require-signature", "--trusted-key", str(public)]
    status, err = run_cli([*argv, *trust], capsys)
    assert status == 2 and "not signed" in err and not (tmp_path / "scored").exists()
    assert run_cli(["sign", str(fresh), "--key", str(private)], capsys)[0] == 0
    assert run_cli([*argv, *trust], capsys)[0] == 0
    assert (tmp_path / "scored" / "part-0.csv").exists()
