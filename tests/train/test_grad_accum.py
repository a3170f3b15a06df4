"""Gradient accumulation (`config.grad_accum_steps`): k micro-batches in one
train step give the update of the unsplit global batch, at the same step
of the learning-rate schedule."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from mmjax import objectives, parallel
from mmjax.objectives.classification import classification_loss
from mmjax.train import config_checks, optim, steps
from mmjax.train.state import create_train_state

MODALITIES = ("audio", "image")
BATCH = 16
# Measured max 4.0e-7 relative to each leaf's largest magnitude over 3
# steps (jax 0.10.2, CPU): the same sums in another order.
RTOL = 1e-5


# The batch sizes `TwoEncoders` was traced with, since the last `_train`.
SEEN = []


class TwoEncoders(nn.Module):
  """Linear encoders of two modalities, summed over the present ones, with
  unimodal heads sown as the MultimodalModel does; appends the batch size
  it is traced with to `SEEN`."""

  @nn.compact
  def __call__(self, batch, present=None, *, train=False):
    SEEN.append(batch["label"].shape[0])
    fused = 0.0
    for m in MODALITIES:
      h = nn.tanh(nn.Dense(6, name=f"{m}_encoder")(batch[m]))
      self.sow("modality_logits", m, nn.Dense(3, name=f"{m}_aux_head")(h))
      keep = 1.0 if present is None else present[m][:, None]
      fused = fused + keep * h
    return nn.Dense(3, name="head")(fused)


def _config(k, incomplete):
  return ml_collections.ConfigDict({
      "seed": 0, "label_smoothing": 0.1, "dtype": "float32",
      "modalities": MODALITIES, "modality_dropout": {},
      "aux_loss_weight": 1.0 if incomplete else 0.0,
      "gradient_modulation": {"name": "ogm_ge" if incomplete else "none",
                              "alpha": 1.0, "noise": False, "end_step": -1},
      "grad_accum_steps": k})


def _batches(incomplete):
  rng = np.random.default_rng(0)
  for _ in range(3):
    batch = {m: rng.normal(size=(BATCH, 5)).astype(np.float32)
             for m in MODALITIES}
    batch["label"] = rng.integers(0, 3, BATCH).astype(np.int32)
    if incomplete:  # micro-batches with different counts of each modality
      audio = rng.random(BATCH) < 0.6
      batch["present"] = {"audio": audio.astype(np.float32),
                          "image": (~audio | (rng.random(BATCH) < 0.5)
                                    ).astype(np.float32)}
    yield batch


def _train(k, incomplete):
  """Params and per-step metrics after 3 steps of warmup (2 steps) + cosine,
  SGD with momentum (no gradient clipping that would hide a wrong scale)."""
  mesh = parallel.make_mesh()
  SEEN.clear()
  opt = ml_collections.ConfigDict({
      "schedule": "warmup_cosine", "learning_rate": 0.5, "warmup_steps": 2,
      "end_learning_rate_factor": 0.1})
  schedule = optim.learning_rate_schedule(opt, 3)
  shapes = {m: jax.ShapeDtypeStruct((BATCH, 5), jnp.float32)
            for m in MODALITIES}
  shapes["label"] = jax.ShapeDtypeStruct((BATCH,), jnp.int32)
  state = create_train_state(TwoEncoders(), shapes,
                             optax.sgd(schedule, momentum=0.9), seed=0,
                             sharding=parallel.replicated(mesh))
  step = steps.make_train_step_from_config(
      mesh, _config(k, incomplete), objectives.resolve(
          ml_collections.ConfigDict({"objective": "classification"})),
      schedule)
  history = []
  for batch in _batches(incomplete):
    state, m = step(state, parallel.to_global(batch, mesh))
    history.append(jax.device_get(m))
  return jax.device_get(state.params), history, list(SEEN)


def _close(a, b):
  scale = float(np.abs(b).max()) or 1.0
  err = float(np.abs(np.asarray(a) - b).max()) / scale
  assert err <= RTOL, f"max relative error {err:.2e} > {RTOL}"


@pytest.mark.parametrize("incomplete", [False, True],
                         ids=["plain", "incomplete_aux_ogm"])
def test_four_micro_batches_equal_one_batch(incomplete):
  """`incomplete`: a presence mask whose counts differ between
  micro-batches, auxiliary losses and OGM-GE (global-batch statistics)."""
  params_1, history_1, seen_1 = _train(1, incomplete)
  params_4, history_4, seen_4 = _train(4, incomplete)
  assert set(seen_1[1:]) == {BATCH} and set(seen_4[1:]) == {BATCH // 4}
  for a, b in zip(jax.tree.leaves(params_4), jax.tree.leaves(params_1)):
    _close(a, b)
  for m4, m1 in zip(history_4, history_1):
    assert set(m4) == set(m1)
    assert m4["learning_rate"] == m1["learning_rate"]
    for key in m1:
      _close(m4[key], m1[key])
  # Warmup then decay: the schedule moved with the optimizer updates.
  rates = [float(m["learning_rate"]) for m in history_4]
  assert rates[0] == 0.0 and rates[1] == 0.25 and rates[2] == 0.5


def test_a_batch_that_does_not_split_is_a_clear_error():
  with pytest.raises(ValueError, match=r"config.grad_accum_steps=3 times the"):
    _train(3, False)


def _checked_config(**changes):
  from configs import av_digits  # pylint: disable=g-import-not-at-top
  config = av_digits.get_config()
  config.update(changes)
  return config


@pytest.mark.parametrize("changes, message", [
    ({"grad_accum_steps": 0}, "config.grad_accum_steps=0 must be a positive"),
    ({"grad_accum_steps": 5, "batch_size": 64},
     "config.grad_accum_steps=5 must be a positive divisor of "
     "config.batch_size=64"),
    ({"grad_accum_steps": 2, "objective": "contrastive"},
     "config.grad_accum_steps=2 is not supported with "
     "config.objective='contrastive'"),
])
def test_config_check_names_grad_accum_steps(changes, message):
  with pytest.raises(ValueError, match=message):
    config_checks.check(_checked_config(**changes))
  config_checks.check(_checked_config(grad_accum_steps=4))


class BatchNormAndDraws(nn.Module):
  """BatchNorm, and the draws of the "dropout" and "augment" rng streams
  kept (with their squares) in "batch_stats", averaged over micro-batches
  as the running averages are."""

  @nn.compact
  def __call__(self, batch, present=None, *, train=False):
    x = nn.BatchNorm(use_running_average=not train, momentum=0.5)(batch["x"])
    for stream in ("dropout", "augment"):
      draw = self.variable("batch_stats", stream, lambda: jnp.zeros(2))
      if train:
        u = jax.random.uniform(self.make_rng(stream))
        draw.value = jnp.stack([u, u ** 2])
    return jnp.zeros((x.shape[0], 2)) + 0.0 * x.sum()


def test_batch_norm_moves_once_per_step_and_micro_batches_draw_anew():
  mesh = parallel.make_mesh()
  batch = {"x": jnp.arange(8.0).reshape(4, 2), "label": jnp.zeros(4, jnp.int32)}
  state = create_train_state(
      BatchNormAndDraws(), {"x": jax.ShapeDtypeStruct((4, 2), jnp.float32)},
      optax.sgd(0.1), seed=0, sharding=parallel.replicated(mesh))
  step = steps.make_train_step(
      mesh, loss=classification_loss, seed=0, label_smoothing=0.0,
      schedule=optax.constant_schedule(0.1), grad_accum_steps=2)
  state, _ = step(state, parallel.to_global(batch, mesh))
  stats = jax.device_get(state.batch_stats)
  # Micro-batches rows {0, 2} and {1, 3}, means [2, 3] and [4, 5]: one
  # momentum-0.5 update towards their mean [3, 4], as the unsplit batch's
  # (sequential updates would give [2.5, 3.25]).
  np.testing.assert_allclose(stats["BatchNorm_0"]["mean"], [1.5, 2.0],
                             rtol=1e-6)
  # E[u^2] - E[u]^2 over the two micro-batches: 0 only if they drew alike.
  for stream in ("dropout", "augment"):
    mean_u, mean_sq = stats[stream]
    assert mean_sq - mean_u ** 2 > 1e-4, stream
