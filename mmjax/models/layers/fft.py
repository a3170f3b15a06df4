"""A real FFT that stays partitioned along the batch.

XLA's SPMD partitioner (GSPMD and Shardy, jax 0.10) does not partition FFT
ops: under a data-parallel `jax.jit`, `jnp.fft.rfft` of a batch-sharded
array all-gathers the whole batch and every device transforms all of it
(its cost in the av_digits step: benchmarks/RESULTS.md, "Notes moved out of
code"). `rfft` declares the obvious rule, following the FFT example of
`jax.experimental.custom_partitioning`: every dimension but the last is a
batch dimension, whose sharding passes through; the last is replicated.
"""

import jax
from jax.experimental.custom_partitioning import custom_partitioning
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

Array = jax.Array


def _last_axis_replicated(sharding, ndim: int) -> NamedSharding:
  spec = tuple(sharding.spec) + (None,) * (ndim - len(sharding.spec))
  return NamedSharding(sharding.mesh, PartitionSpec(*spec[:-1], None))


def _plain_rfft(x: Array) -> Array:
  return jnp.fft.rfft(x, axis=-1)


@custom_partitioning
def _partitioned_rfft(x: Array) -> Array:
  return _plain_rfft(x)


def _partition(mesh, arg_shapes, result_shape):
  del result_shape
  sharding = _last_axis_replicated(arg_shapes[0].sharding,
                                   len(arg_shapes[0].shape))
  return mesh, _plain_rfft, sharding, (sharding,)


def _infer_from_operands(mesh, arg_shapes, result_shape):
  del mesh, result_shape
  return _last_axis_replicated(arg_shapes[0].sharding, len(arg_shapes[0].shape))


def _propagate_user_sharding(mesh, user_shape):
  del mesh
  return _last_axis_replicated(user_shape.sharding, len(user_shape.shape))


_partitioned_rfft.def_partition(
    partition=_partition,
    infer_sharding_from_operands=_infer_from_operands,
    propagate_user_sharding=_propagate_user_sharding,
    sharding_rule="... n -> ... k",
    need_replication_factors=("n", "k"))


# custom_partitioning has neither a batching nor a differentiation rule;
# these supply them (the FFT is batched over leading axes and linear).
@jax.custom_batching.custom_vmap
def _batchable_rfft(x: Array) -> Array:
  return _partitioned_rfft(x)


@_batchable_rfft.def_vmap
def _batch_rule(axis_size, in_batched, x):
  del axis_size, in_batched
  return _batchable_rfft(x), True  # the mapped axis is a leading axis


@jax.custom_vjp
def rfft(x: Array) -> Array:
  """`jnp.fft.rfft(x, axis=-1)` that keeps the sharding of the leading axes.

  Args:
    x: `[..., n]` real array (float32 or float64), possibly sharded along
      any leading axes.

  Returns:
    `[..., n // 2 + 1]` complex (complex64 for float32), sharded like `x`
    on the leading axes. Works under `jax.jit`, `jax.vmap` and
    differentiation (the gradient is `jnp.fft.rfft`'s, computed
    unpartitioned), and outside `jit`.
  """
  return _batchable_rfft(x)


def _rfft_fwd(x):
  return _batchable_rfft(x), x.shape[-1]


def _rfft_bwd(n, cotangent):
  zeros = jnp.zeros(cotangent.shape[:-1] + (n,), cotangent.real.dtype)
  _, vjp = jax.vjp(_plain_rfft, zeros)
  return vjp(cotangent)


rfft.defvjp(_rfft_fwd, _rfft_bwd)
