"""The `saved_models` fixture: every zoo model saved once per session in every format (save_all)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The top-level names `zoo` and `save_models`, as pickled modules record them (see zoo.py).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import save_models  # noqa: E402


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """{model name: {"pt2"|"ts"|"pkl"|"state"|"inputs": Path}} plus {"broken": {"random"|"truncated"|
    "empty"|"text": Path}}; the folder also holds manifest.json (failures, how each .ts was made)."""
    return save_models.save_all(tmp_path_factory.mktemp("saved_models"))
