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


def make_train_step(mesh: Mesh, *, seed: int, label_smoothing: float,
                    schedule: optax.Schedule) -> Callable[
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
  """
  def train_step(state: TrainState, batch: Batch):
    rng = jax.random.fold_in(jax.random.key(seed), state.step)
    rngs = {"dropout": jax.random.fold_in(rng, 0),
            "augment": jax.random.fold_in(rng, 1)}

    def loss_fn(params):
      logits, updates = state.apply_fn(
          state.variables(params), batch, train=True, rngs=rngs,
          mutable=["batch_stats", "losses"])
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


def make_eval_step(mesh: Mesh, num_classes: int) -> Callable[
    [TrainState, Batch, Optional[Mapping[str, jax.Array]]], Dict]:
  """Returns `eval_step(state, batch, present) -> sums`, jitted.

  `batch` must carry `mask` (float32 `[batch]`, 0 for padding). `present`
  (`{modality: float32 [batch]}` or None) simulates missing modalities.
  Returns replicated sums over the unmasked examples: `loss_sum` (nats),
  `count`, and `confusion` (float32 `[C, C]`, rows true, columns predicted).
  """
  def eval_step(state: TrainState, batch: Batch, present=None):
    logits = state.apply_fn(state.variables(), batch, present, train=False)
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
