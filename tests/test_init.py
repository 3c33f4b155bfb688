import subprocess
import sys

import pytest

import vitalsentry


def test_public_names_resolve_to_the_pipeline_and_bundle_loader() -> None:
    from vitalsentry.bundle import load_bundle
    from vitalsentry.pipeline import VitalRiskPipeline

    assert vitalsentry.VitalRiskPipeline is VitalRiskPipeline
    assert vitalsentry.load_bundle is load_bundle
    assert set(vitalsentry.__all__) == {"VitalRiskPipeline", "load_bundle", "__version__"}


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = vitalsentry.no_such_name  # type: ignore[attr-defined]


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, vitalsentry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _loaded(code: str, prefix: str) -> list[str]:
    """Modules starting with ``prefix`` that a fresh interpreter holds after ``code``."""
    probe = (
        f"import sys; {code}; print(*sorted(m for m in sys.modules if m.startswith({prefix!r})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_validating_a_config_imports_nothing_of_data() -> None:
    code = "from vitalsentry.config import DataConfig; DataConfig(channels=('spo2', 'systolic_bp'))"
    assert _loaded(code, "vitalsentry.data") == []


def test_loading_bundles_does_not_import_lightning() -> None:
    assert _loaded("import vitalsentry.bundle", "lightning") == []
