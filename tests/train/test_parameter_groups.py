"""Fine-tuning groups: frozen encoders, per-encoder learning-rate factors,
linear probing (`mmjax.train.optim.parameter_groups`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import av_digits
from mmjax.train import optim

PARAMS = {"image_encoder": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
          "audio_encoder": {"kernel": jnp.ones((2, 2))},
          "fusion": {"kernel": jnp.ones((2, 2))},
          "head": {"kernel": jnp.ones((2, 3))},
          "audio_aux_head": {"kernel": jnp.ones((2, 3))}}


def config(linear_probe=False, fusion="early_fusion", **encoder_options):
  c = av_digits.get_config(f"fusion={fusion}")
  c.linear_probe = linear_probe
  c.optimizer.schedule = "constant"
  c.optimizer.learning_rate = 0.1
  c.optimizer.weight_decay = 0.0
  for key, value in encoder_options.items():
    modality, option = key.split("__")
    c.model.encoders[modality][option] = value
  return c


def sgd(c, clip=0.0):
  c.optimizer.name = "sgd"
  c.optimizer.momentum = 0.0
  c.optimizer.grad_clip_norm = clip
  return optim.make_optimizer(c.optimizer, 100, optim.parameter_groups(c))


def updates_for(tx, grads):
  return jax.tree.map(np.asarray, tx.update(grads, tx.init(PARAMS), PARAMS)[0])


def grads_of(value):
  return jax.tree.map(lambda p: jnp.full_like(p, value), PARAMS)


def test_default_config_keeps_the_plain_optimizer():
  """No groups: the optimizer state is that of earlier checkpoints."""
  assert optim.parameter_groups(config()) is None
  assert optim.parameter_groups(config(audio__learning_rate_scale=1.0)) is None


def test_frozen_encoder_gets_no_update_and_no_share_of_the_clip_norm():
  c = config(image__freeze=True)
  small = updates_for(sgd(c, clip=1.0), grads_of(0.01))
  big_frozen = grads_of(0.01)
  big_frozen["image_encoder"] = jax.tree.map(lambda g: g * 1e6,
                                             big_frozen["image_encoder"])
  updates = updates_for(sgd(c, clip=1.0), big_frozen)
  assert all(not np.any(u) for u in jax.tree.leaves(updates["image_encoder"]))
  for key in ("audio_encoder", "fusion", "head"):
    np.testing.assert_allclose(updates[key]["kernel"], small[key]["kernel"])
    assert np.all(updates[key]["kernel"] == pytest.approx(-0.1 * 0.01))


def test_frozen_encoder_has_no_optimizer_state():
  c = config(image__freeze=True)
  c.optimizer.name = "adamw"
  tx = optim.make_optimizer(c.optimizer, 100, optim.parameter_groups(c))
  sizes = sum(np.size(x) for x in jax.tree.leaves(tx.init(PARAMS)))
  plain = optim.make_optimizer(c.optimizer, 100)
  plain_sizes = sum(np.size(x) for x in jax.tree.leaves(plain.init(PARAMS)))
  assert plain_sizes - sizes == 2 * 6  # Adam's two moments of 4 + 2 values


def test_learning_rate_scale_scales_that_encoder_only():
  c = config(audio__learning_rate_scale=0.1)
  updates = updates_for(sgd(c), grads_of(1.0))
  np.testing.assert_allclose(updates["audio_encoder"]["kernel"], -0.01, rtol=1e-6)
  np.testing.assert_allclose(updates["image_encoder"]["kernel"], -0.1, rtol=1e-6)
  np.testing.assert_allclose(updates["head"]["kernel"], -0.1, rtol=1e-6)


def test_learning_rate_scale_follows_the_schedule_with_adamw():
  c = config(audio__learning_rate_scale=0.25)
  c.optimizer.schedule = "warmup_cosine"
  c.optimizer.warmup_steps = 10
  tx = optim.make_optimizer(c.optimizer, 100, optim.parameter_groups(c))
  state = tx.init(PARAMS)
  for _ in range(5):  # Adam's first steps move each weight by ~ lr(step)
    updates, state = tx.update(grads_of(1.0), state, PARAMS)
  ratio = updates["audio_encoder"]["kernel"] / updates["image_encoder"]["kernel"]
  np.testing.assert_allclose(ratio, 0.25, rtol=1e-5)


def test_linear_probe_trains_only_the_heads():
  updates = updates_for(sgd(config(linear_probe=True)), grads_of(1.0))
  for key in ("image_encoder", "audio_encoder", "fusion"):
    assert all(not np.any(u) for u in jax.tree.leaves(updates[key])), key
  for key in ("head", "audio_aux_head"):
    np.testing.assert_allclose(updates[key]["kernel"], -0.1, rtol=1e-6)


def test_linear_probe_needs_a_head():
  c = config(linear_probe=True, fusion="late_fusion")
  params = {k: v for k, v in PARAMS.items() if k != "head"}
  tx = sgd(c)
  with pytest.raises(ValueError, match="config.linear_probe.*late_fusion"):
    tx.init(params)
