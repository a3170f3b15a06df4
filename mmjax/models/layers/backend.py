"""The backend that layers choosing a formulation per backend are traced for."""

import jax
import jax.extend.backend


def platform() -> str:
  """`jax.default_backend()`: "cpu", "gpu" (CUDA) or "tpu", and "rocm" for
  an AMD GPU (which JAX also calls "gpu").

  Layers (`conv`, `attention_implementation`) read the backend only through
  this function, at trace time, so that tests can monkeypatch it to trace
  every formulation on the CPU.
  """
  name = jax.default_backend()
  if name == "gpu" and "rocm" in jax.extend.backend.get_backend(
      ).platform_version.lower():
    return "rocm"
  return name
