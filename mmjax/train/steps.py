"""jit-compiled, data-parallel train and eval steps.

Batches are global arrays sharded along the mesh's `data` axis and the
train_state is replicated, so XLA inserts the gradient all-reduce; the same
step runs on one device or many with identical results up to float32
reduction order. The train_state buffer is donated to save memory.
"""

from typing import Callable, Dict, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from mmjax import parallel
from mmjax.train import losses, metrics
from mmjax.train.state import TrainState

Batch = Mapping[str, jax.Array]

DTYPES = ("float32", "bfloat16", "float16")


def cast_floating(tree, dtype):
  """Casts every floating-point array of `tree` to `dtype` (others kept)."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
      else x, tree)


def _compute_dtype(dtype: str):
  if dtype not in DTYPES:
    raise ValueError(f"config.dtype must be one of {DTYPES}, got {dtype!r}")
  return jnp.dtype(dtype)


def make_train_step(mesh: Mesh, *, seed: int, label_smoothing: float,
                    schedule: optax.Schedule,
                    dtype: str = "float32") -> Callable[
                        [TrainState, Batch], Tuple[TrainState, Dict]]:
  """Returns `train_step(state, batch) -> (state, metrics)`, jitted.

  Randomness (rng streams "dropout" and "augment", the latter for on-device
  augmentation such as SpecAugment) is `fold_in(key(seed), step)`: a
  function of the step alone, so a resumed run repeats exactly the
  uninterrupted one. The objective is the mean cross-entropy plus every
  value the model sows into its "losses" collection; BatchNorm statistics
  ("batch_stats") are updated from the batch.

  The metrics are replicated float32 scalars: `loss` (mean cross-entropy,
  nats, without the extra losses), `accuracy`, `learning_rate`, `grad_norm`
  (global L2 norm).

  Mixed precision (`dtype` "bfloat16" or "float16"): the parameters and the
  floating-point inputs are cast to `dtype` for the forward and backward
  pass, so activations and matmuls run in it, while the train_state
  (parameters, optimizer state, BatchNorm statistics) and the gradients
  stay float32 and the loss is computed from float32 logits (the policy of
  Micikevicius et al. 2018, "Mixed Precision Training", without loss
  scaling: bfloat16 has float32's exponent range).

  Raises:
    ValueError: for a `dtype` outside `DTYPES`.
  """
  compute_dtype = _compute_dtype(dtype)

  def train_step(state: TrainState, batch: Batch):
    rng = jax.random.fold_in(jax.random.key(seed), state.step)
    rngs = {"dropout": jax.random.fold_in(rng, 0),
            "augment": jax.random.fold_in(rng, 1)}

    def loss_fn(params):
      variables = state.variables(cast_floating(params, compute_dtype))
      inputs = cast_floating(dict(batch), compute_dtype)
      logits, updates = state.apply_fn(
          variables, inputs, train=True, rngs=rngs,
          mutable=["batch_stats", "losses"])
      logits = logits.astype(jnp.float32)
      updates = cast_floating(updates, jnp.float32)
      loss = losses.cross_entropy(logits, batch["label"], label_smoothing)
      extra = sum((jnp.sum(x) for x in jax.tree.leaves(updates.get("losses", {}))),
                  jnp.zeros((), jnp.float32))
      return loss.mean() + extra, (logits, updates.get("batch_stats", {}),
                                   loss.mean())

    (_, (logits, batch_stats, loss)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads).replace(
        batch_stats=batch_stats)
    step_metrics = {
        "loss": loss,
        "accuracy": (logits.argmax(-1) == batch["label"]).mean(),
        "learning_rate": schedule(state.step),
        "grad_norm": optax.global_norm(grads),
    }
    return new_state, step_metrics

  replicated = parallel.replicated(mesh)
  return jax.jit(train_step, in_shardings=(replicated, parallel.data_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def make_eval_step(mesh: Mesh, num_classes: int,
                   dtype: str = "float32") -> Callable[
    [TrainState, Batch, Optional[Mapping[str, jax.Array]]], Dict]:
  """Returns `eval_step(state, batch, present) -> sums`, jitted.

  `batch` must carry `mask` (float32 `[batch]`, 0 for padding). `present`
  (`{modality: float32 [batch]}` or None) simulates missing modalities.
  Returns replicated sums over the unmasked examples: `loss_sum` (nats),
  `count`, and `confusion` (float32 `[C, C]`, rows true, columns predicted).
  The forward pass runs in `dtype` as in `make_train_step`.
  """
  compute_dtype = _compute_dtype(dtype)

  def eval_step(state: TrainState, batch: Batch, present=None):
    params = cast_floating(state.params, compute_dtype)
    inputs = {k: v for k, v in batch.items() if k != "mask"}
    logits = state.apply_fn(state.variables(params),
                            cast_floating(inputs, compute_dtype), present,
                            train=False).astype(jnp.float32)
    mask = batch["mask"]
    loss = losses.cross_entropy(logits, batch["label"])
    return {
        "loss_sum": (loss * mask).sum(),
        "count": mask.sum(),
        "confusion": metrics.confusion_matrix(
            batch["label"], logits.argmax(-1), num_classes, mask),
    }

  data = parallel.data_sharding(mesh)
  return jax.jit(eval_step,
                 in_shardings=(parallel.replicated(mesh), data, data),
                 out_shardings=parallel.replicated(mesh))
