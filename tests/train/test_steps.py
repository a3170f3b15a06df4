"""The train step: extra losses from the "losses" collection, BatchNorm
statistics and the "augment" rng stream, with no per-model code."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmjax import parallel
from mmjax.objectives.classification import classification_loss
from mmjax.train import steps
from mmjax.train.state import create_train_state


class SowsALoss(nn.Module):
  """Logits that do not depend on `w`; the only gradient on `w` comes from
  the sown loss 3 * w**2. BatchNorm statistics and an "augment" draw too."""

  @nn.compact
  def __call__(self, batch, present=None, *, train=False):
    w = self.param("w", nn.initializers.ones, ())
    self.sow("losses", "penalty", 3.0 * w ** 2)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.5)(batch["x"])
    if train:
      x = x + 0.0 * jax.random.normal(self.make_rng("augment"), x.shape)
    return jnp.zeros((x.shape[0], 2)) + 0.0 * x.sum()


def test_train_step_adds_sown_losses_and_updates_batch_stats():
  mesh = parallel.make_mesh()
  batch = {"x": jnp.arange(8.0).reshape(4, 2), "label": jnp.zeros(4, jnp.int32)}
  state = create_train_state(
      SowsALoss(), {"x": jax.ShapeDtypeStruct((4, 2), jnp.float32)},
      optax.sgd(0.1), seed=0, sharding=parallel.replicated(mesh))
  np.testing.assert_array_equal(state.batch_stats["BatchNorm_0"]["mean"], [0, 0])
  train_step = steps.make_train_step(mesh, loss=classification_loss, seed=0,
                                     label_smoothing=0.0,
                                     schedule=optax.constant_schedule(0.1))
  state, metrics = train_step(state, parallel.to_global(batch, mesh))
  # d(3 w^2)/dw = 6 at w = 1: one SGD step of 0.1 gives 1 - 0.6.
  np.testing.assert_allclose(state.params["w"], 0.4, rtol=1e-6)
  # The reported loss is the cross-entropy alone: uniform logits, log(2).
  np.testing.assert_allclose(metrics["loss"], np.log(2.0), rtol=1e-6)
  # Running mean: 0.5 * 0 + 0.5 * batch mean ([3, 4]).
  np.testing.assert_allclose(state.batch_stats["BatchNorm_0"]["mean"],
                             [1.5, 2.0], rtol=1e-6)


# bfloat16 has an 8-bit mantissa (relative rounding 2**-9 = 2e-3 per
# operation); the tiny av_digits model's first-step loss in bfloat16 was
# measured 2.4e-3 relative from float32 (jax 0.10.2, CPU).
BFLOAT16_LOSS_RTOL = 2e-2


def test_bfloat16_step_keeps_float32_state_and_close_loss():
  from configs import av_digits  # pylint: disable=g-import-not-at-top
  from mmjax.models.multimodal import build_classifier  # pylint: disable=g-import-not-at-top
  from tests.train.conftest import TINY_OVERRIDES  # pylint: disable=g-import-not-at-top
  config = av_digits.get_config()
  for key, value in TINY_OVERRIDES.items():
    node = config
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  mesh = parallel.make_mesh()
  rng = np.random.default_rng(0)
  batch = {"image": rng.random((8, 28, 28, 1), np.float32),
           "audio": rng.uniform(-0.5, 0.5, (8, 8000)).astype(np.float32),
           "label": rng.integers(0, 10, 8).astype(np.int32)}
  shapes = {k: jax.ShapeDtypeStruct(v.shape, v.dtype)
            for k, v in batch.items() if k != "label"}
  losses = {}
  for dtype in ("float32", "bfloat16"):
    state = create_train_state(build_classifier(config), shapes,
                               optax.adam(1e-3), seed=0,
                               sharding=parallel.replicated(mesh))
    step = steps.make_train_step(mesh, loss=classification_loss, seed=0,
                                 label_smoothing=0.0,
                                 schedule=optax.constant_schedule(1e-3),
                                 dtype=dtype)
    state, metrics = step(state, parallel.to_global(batch, mesh))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.opt_state)
               if jnp.issubdtype(x.dtype, jnp.floating))
    losses[dtype] = float(metrics["loss"])
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"],
                             rtol=BFLOAT16_LOSS_RTOL)


def test_unknown_dtype_is_refused():
  with np.testing.assert_raises_regex(ValueError, "config.dtype must be"):
    steps.make_train_step(parallel.make_mesh(), loss=classification_loss,
                          seed=0, label_smoothing=0.0,
                          schedule=optax.constant_schedule(0.1), dtype="fp8")
