"""The persistent XLA compilation cache, keyed so that it hits across
processes (a restart, a resumed run, another worker)."""

import jax


def enable(directory: str) -> None:
  """Stores compiled programs in `directory` (local or `gs://...`), where
  later processes compiling the same program load them instead.

  JAX keys a program holding a `custom_partitioning` op by the address of
  its Python partitioning callback, which differs in every process:
  `mmjax.models.layers.fft.rfft` is one, in every spectrogram front end,
  so without more the cache never hit for a model with audio and every
  resume compiled its train step again (a tiny av_digits launch: 11 s of
  its 27 s CPU). The key here leaves that address out
  (`jax_remove_custom_partitioning_ptr_from_cache_key`); the op's
  computation, shapes and sharding rule stay in it, and each of mmjax's
  `custom_partitioning` functions partitions one computation one way.

  Args:
    directory: the cache folder (created by JAX when missing).
  """
  jax.config.update("jax_compilation_cache_dir", str(directory))
  jax.config.update("jax_remove_custom_partitioning_ptr_from_cache_key", True)
