"""The train step: extra losses from the "losses" collection, BatchNorm
statistics and the "augment" rng stream, with no per-model code."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmjax import parallel
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
  train_step = steps.make_train_step(mesh, seed=0, label_smoothing=0.0,
                                     schedule=optax.constant_schedule(0.1))
  state, metrics = train_step(state, parallel.to_global(batch, mesh))
  # d(3 w^2)/dw = 6 at w = 1: one SGD step of 0.1 gives 1 - 0.6.
  np.testing.assert_allclose(state.params["w"], 0.4, rtol=1e-6)
  # The reported loss is the cross-entropy alone: uniform logits, log(2).
  np.testing.assert_allclose(metrics["loss"], np.log(2.0), rtol=1e-6)
  # Running mean: 0.5 * 0 + 0.5 * batch mean ([3, 4]).
  np.testing.assert_allclose(state.batch_stats["BatchNorm_0"]["mean"],
                             [1.5, 2.0], rtol=1e-6)
