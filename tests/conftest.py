"""Shared test set-up: Keras 2 for TFRS, quiet TensorFlow, and the shared data sets."""

import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def movielens_100k() -> pathlib.Path:
    """MovieLens 100K from ../shared/data (its licence forbids committing it); skip if absent."""
    path = SHARED_DATA / "ml-100k"
    if not (path / "u.data").exists():
        pytest.skip(f"MovieLens 100K not found at {path}")
    return path
