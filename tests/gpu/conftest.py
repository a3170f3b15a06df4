"""Tests of tests/gpu/ run only on a GPU backend (`pytest -m gpu` on a GPU
host); elsewhere they are skipped. The backend is read when a test starts,
not at collection, so collecting them initialises nothing."""

import jax
import pytest

REASON = "needs a GPU backend; CI has none"


@pytest.fixture(autouse=True)
def gpu_backend():
  if jax.default_backend() != "gpu":
    pytest.skip(REASON)
