"""The registry of preprocessing ops and the contract every op follows.

In the spirit of big_vision's `pp` ops. Each op is a factory registered by
name in `OPS`, whose arguments are Python literals and which returns
`fn(x, seed) -> x`: `x` is one example's value of one modality (or, for the
example-level ops, the whole example dict) and `seed` an int64 `[2]`
stateless-random seed unique to that example, so augmentation is
reproducible and independent of how the input is sharded. Ops run inside
tf.data on the host, per example, before batching.

The ops live in one module per modality of this package (general, image,
audio, text, video, pretrained); `OPS` imports them all on its first lookup.
"""

from typing import Callable

import tensorflow as tf

from mmjax.registry import Registry

Op = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
OPS = Registry("preprocessing op", package="mmjax.data.pp")


def deterministic(fn: Callable[[tf.Tensor], tf.Tensor]) -> Op:
  """The op `fn(x, seed) -> fn(x)`, for ops that draw nothing at random."""
  return lambda x, seed: fn(x)
