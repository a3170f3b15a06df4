"""Where the train_state lives: replicated (data parallelism, the default) or
sharded over a second mesh axis `fsdp` (fully sharded data parallelism,
ZeRO-3 style: Rajbhandari et al. 2020; as `fsdp` in big_vision's sharding
rules).

The mesh is `data x fsdp` (`mmjax.parallel.make_mesh`: `config.sharding.fsdp`
devices on the second axis; 1 = the 1-D data-parallel mesh). Batches are
split over both axes; each parameter, and the optimizer state of the same
shape, is split over `fsdp` along one dimension, chosen by

1. `config.sharding.rules`: `((regex, logical axis names), ...)`. The first
   regex found (`re.search`) in a leaf's path, e.g.
   `params/encoders/image/Conv_0/kernel` (the optimizer's moments of that
   parameter end with the same path), gives the leaf's Flax logical axis
   names, e.g. `(None, None, "embed", "mlp")`, which
   `config.sharding.logical_axis_rules` (`(("mlp", "fsdp"), ...)`) maps to
   mesh axes with `flax.linen.logical_to_mesh_axes`.
2. Otherwise the largest dimension divisible by the `fsdp` size, for
   leaves of at least `config.sharding.min_size` elements (smaller ones are
   replicated: sharding them saves little memory and costs a collective).

XLA (GSPMD) inserts the all-gathers of the sharded parameters in the forward
and backward pass and the reduce-scatter of their gradients.
"""

import re
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import ml_collections
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mmjax.parallel import FSDP_AXIS


def sharding_config() -> ml_collections.ConfigDict:
  """The `config.sharding` defaults: replicated parameters."""
  c = ml_collections.ConfigDict()
  c.fsdp = 1  # devices on the fsdp mesh axis; 1 = data parallelism only
  c.min_size = 2 ** 14  # leaves with fewer elements stay replicated
  c.rules = ()  # ((regex on the leaf path, logical axis names), ...)
  c.logical_axis_rules = ()  # ((logical axis name, mesh axis or None), ...)
  return c


def _path(keypath) -> str:
  parts = []
  for k in keypath:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def leaf_spec(path: str, shape: Tuple[int, ...], mesh: Mesh,
              config: Optional[ml_collections.ConfigDict]) -> PartitionSpec:
  """The PartitionSpec of one train_state leaf (see the module docstring).

  Raises:
    ValueError: when a rule's logical axis names do not match the leaf's
      rank, or it shards a dimension not divisible by the mesh axis size.
  """
  if FSDP_AXIS not in mesh.axis_names or not shape:
    return PartitionSpec()
  size = mesh.shape[FSDP_AXIS]
  for pattern, names in (config.rules if config else ()):
    if re.search(pattern, path):
      if len(names) != len(shape):
        raise ValueError(
            f"config.sharding.rules: {pattern!r} gives {len(names)} logical "
            f"axis names {tuple(names)} to {path} of shape {shape}")
      spec = nn.logical_to_mesh_axes(tuple(names),
                                     tuple(map(tuple, config.logical_axis_rules)))
      for dim, axis in zip(shape, spec):
        if axis is not None and dim % mesh.shape[axis]:
          raise ValueError(f"config.sharding.rules: {pattern!r} shards a "
                           f"dimension of {dim} of {path} over the {axis!r} "
                           f"axis of size {mesh.shape[axis]}")
      return PartitionSpec(*spec)
  min_size = config.min_size if config else 0
  n = 1
  for d in shape:
    n *= d
  divisible = [i for i, d in enumerate(shape) if d % size == 0]
  if n < min_size or not divisible:
    return PartitionSpec()
  dim = max(divisible, key=lambda i: shape[i])
  return PartitionSpec(*[FSDP_AXIS if i == dim else None
                         for i in range(len(shape))])


def state_shardings(abstract_state: Any, mesh: Mesh,
                    config: Optional[ml_collections.ConfigDict] = None) -> Any:
  """A NamedSharding for every leaf of `abstract_state` (arrays or
  `jax.ShapeDtypeStruct`s): replicated on a 1-D mesh, else by the rules."""
  return jax.tree_util.tree_map_with_path(
      lambda kp, x: NamedSharding(mesh, leaf_spec(
          _path(kp), tuple(getattr(x, "shape", ())), mesh, config)),
      abstract_state)


def bytes_per_device(state: Any) -> int:
  """Bytes of `state`'s arrays held by one device (this process's first)."""
  device = jax.local_devices()[0]
  total = 0
  for x in jax.tree.leaves(state):
    for shard in getattr(x, "addressable_shards", ()):
      if shard.device == device:
        total += shard.data.nbytes
  return total


def batch_spec(mesh: Mesh) -> PartitionSpec:
  """Batches `[global_batch, ...]` split over every mesh axis."""
  return PartitionSpec(tuple(mesh.axis_names) if len(mesh.axis_names) > 1
                       else mesh.axis_names[0])


def describe(mesh: Mesh) -> Sequence[str]:
  return [f"{a}={mesh.shape[a]}" for a in mesh.axis_names]
