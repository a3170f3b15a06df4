"""The backend that layers choosing a formulation per backend are traced for."""

import jax


def platform() -> str:
  """`jax.default_backend()`: "cpu", "gpu" or "tpu".

  Layers read the backend only through this function, at trace time, so
  that tests can monkeypatch it to trace every formulation on the CPU.
  """
  return jax.default_backend()
