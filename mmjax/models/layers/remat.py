"""Activation rematerialisation of a layer stack, by policy name.

The config key `remat` of every encoder layer stack and attention fusion
block names a `jax.checkpoint` policy (`jax.checkpoint_policies`), applied to
each layer with `flax.linen.remat`:
  "none": no rematerialisation; every activation the backward pass needs is
    kept (the default, the fastest when memory suffices).
  "full": `nothing_saveable`: each layer keeps only its input and recomputes
    the rest in the backward pass (least memory, about one more forward).
  "dots": `dots_with_no_batch_dims_saveable`: each layer keeps the results
    of its matmuls with the weights (the Dense projections) and recomputes
    the rest (attention logits and softmax, norms, nonlinearities): most of
    the memory saving at a small part of the recompute.
The parameters and their names are the same under every policy, so a
checkpoint trained with one loads with any other.

Reference: Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost";
JAX's `jax.checkpoint` policies.
"""

from typing import Optional, Sequence

import flax.linen as nn
import jax

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def check_remat(remat: str) -> str:
  """`remat`, checked.

  Raises:
    ValueError: for a name outside `REMAT_POLICIES`, listing them.
  """
  if remat not in REMAT_POLICIES:
    raise ValueError(f"remat must be one of {tuple(REMAT_POLICIES)}, got "
                     f"{remat!r}")
  return remat


def remat_module(module_cls, remat: str, static_argnums: Sequence[int]):
  """`module_cls`, or its `nn.remat` under the policy named `remat`.

  Args:
    module_cls: a Flax module class.
    remat: a key of `REMAT_POLICIES`.
    static_argnums: the positions in `__call__(self, ...)` (self is 0) of
      the Python values, e.g. `train`: they must be passed positionally.

  Raises:
    ValueError: for an unknown `remat`.
  """
  policy: Optional[object] = REMAT_POLICIES[check_remat(remat)]
  if policy is None:
    return module_cls
  return nn.remat(module_cls, policy=policy,
                  static_argnums=tuple(static_argnums))
