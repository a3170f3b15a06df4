import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import av_digits
from mmjax.train import losses, optim


def opt_config(**overrides):
  c = av_digits.get_config().optimizer
  c.unlock()
  c.update(overrides)
  return c


def test_warmup_cosine_schedule():
  c = opt_config(learning_rate=1.0, warmup_steps=10, end_learning_rate_factor=0.01)
  s = optim.learning_rate_schedule(c, 100)
  assert s(0) == 0.0
  assert s(5) == pytest.approx(0.5)
  assert s(10) == pytest.approx(1.0)
  assert s(100) == pytest.approx(0.01)
  assert s(55) == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-5)


def test_bad_optimizer_settings():
  with pytest.raises(ValueError, match="config.optimizer.name"):
    optim.make_optimizer(opt_config(name="lion"), 1000)
  with pytest.raises(ValueError, match="config.optimizer.schedule"):
    optim.make_optimizer(opt_config(schedule="step"), 1000)
  with pytest.raises(ValueError, match="warmup_steps"):
    optim.make_optimizer(opt_config(warmup_steps=100), 100)


def test_weight_decay_skips_biases():
  tx = optim.make_optimizer(
      opt_config(schedule="constant", learning_rate=0.1, weight_decay=0.5,
                 grad_clip_norm=0.0), 10)
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  np.testing.assert_allclose(updates["kernel"], -0.1 * 0.5 * np.ones((2, 2)))
  np.testing.assert_allclose(updates["bias"], np.zeros(2))


def test_cross_entropy_matches_optax_and_smoothing():
  logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
  labels = jnp.array([0, 2])
  np.testing.assert_allclose(
      losses.cross_entropy(logits, labels),
      optax.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=1e-6)
  log_p = jax.nn.log_softmax(logits)
  smoothed = -(0.9 * log_p[jnp.arange(2), labels] + 0.1 * log_p.mean(-1))
  np.testing.assert_allclose(losses.cross_entropy(logits, labels, 0.1),
                             smoothed, rtol=1e-6)
