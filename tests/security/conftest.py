"""The service tests' bundle, keys and clients (from ``tests/serve/conftest.py``), reused here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "serve_fixtures", Path(__file__).parents[1] / "serve" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
serve_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve_fixtures)

bundle_dir = serve_fixtures.bundle_dir
pipeline = serve_fixtures.pipeline
key_pairs = serve_fixtures.key_pairs
keys = serve_fixtures.keys
key_entries = serve_fixtures.key_entries
make_client = serve_fixtures.make_client
client = serve_fixtures.client
