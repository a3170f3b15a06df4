"""Modality dropout, auxiliary losses and OGM-GE (mmjax.train.balancing), and
their wiring into the train step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from mmjax import parallel
from mmjax.objectives.classification import classification_loss
from mmjax.train import balancing, steps
from mmjax.train.state import create_train_state

MODALITIES = ("audio", "image")


def test_sample_presence_rates_and_never_empty():
  present = balancing.sample_presence(jax.random.key(0), 20000, MODALITIES,
                                      {"audio": 0.5, "image": 0.2})
  audio, image = np.asarray(present["audio"]), np.asarray(present["image"])
  assert set(np.unique(audio)) <= {0.0, 1.0}
  assert ((audio + image) >= 1).all()
  # Both dropped (p = 0.1) are rescued, half of them to each modality:
  # P(audio kept) = 0.5 + 0.05, P(image kept) = 0.8 + 0.05. 3 sigma of a
  # proportion at n = 20000 is about 0.011.
  np.testing.assert_allclose(audio.mean(), 0.55, atol=0.011)
  np.testing.assert_allclose(image.mean(), 0.85, atol=0.011)


def test_sample_presence_without_dropout_keeps_everything():
  present = balancing.sample_presence(jax.random.key(1), 64, MODALITIES, {})
  for m in MODALITIES:
    np.testing.assert_array_equal(present[m], np.ones(64))


def test_auxiliary_losses_are_mean_cross_entropy():
  logits = {"audio": jnp.array([[2.0, 0.0], [0.0, 1.0]])}
  labels = jnp.array([0, 0])
  expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0))])
  np.testing.assert_allclose(
      balancing.auxiliary_losses(logits, labels)["audio"], expected, rtol=1e-6)


def test_ogm_ge_slows_only_the_dominant_modality():
  # Scores 3 vs 1: rho_audio = 3, k = 1 - tanh(0.5 * 2); image keeps 1.
  k = balancing.ogm_ge_coefficients(
      {"audio": jnp.float32(3.0), "image": jnp.float32(1.0)}, alpha=0.5)
  np.testing.assert_allclose(k["audio"], 1 - np.tanh(1.0), rtol=1e-6)
  np.testing.assert_allclose(k["image"], 1.0)
  equal = balancing.ogm_ge_coefficients(
      {"audio": jnp.float32(2.0), "image": jnp.float32(2.0)}, alpha=0.5)
  np.testing.assert_allclose([equal["audio"], equal["image"]], [1.0, 1.0])


def test_modality_scores_sum_true_class_probabilities():
  logits = {"image": jnp.log(jnp.array([[0.7, 0.3], [0.4, 0.6]]))}
  scores = balancing.modality_scores(logits, jnp.array([0, 0]))
  np.testing.assert_allclose(scores["image"], 1.1, rtol=1e-6)


def test_modulate_gradients_scales_encoders_only():
  grads = {"audio_encoder": {"w": jnp.ones((3,))},
           "image_encoder": {"w": jnp.full((3,), 2.0)},
           "head": {"w": jnp.ones((3,))}}
  out = balancing.modulate_gradients(
      grads, {"audio": jnp.float32(0.25), "image": jnp.float32(1.0)},
      jax.random.key(0), noise=False)
  np.testing.assert_allclose(out["audio_encoder"]["w"], 0.25)
  np.testing.assert_allclose(out["image_encoder"]["w"], 2.0)
  np.testing.assert_allclose(out["head"]["w"], 1.0)


def test_generalisation_enhancement_noise_has_the_gradient_std():
  g = jnp.asarray(np.random.default_rng(0).normal(0.0, 3.0, 20000), jnp.float32)
  out = balancing.modulate_gradients(
      {"audio_encoder": g}, {"audio": jnp.float32(0.0)}, jax.random.key(0),
      noise=True)["audio_encoder"]
  # k = 0 leaves the noise alone: std(g) = 3 up to sampling (1% at n=20000).
  np.testing.assert_allclose(np.std(out), np.std(g), rtol=0.03)


def _balancing_config(**kw):
  c = ml_collections.ConfigDict({
      "modality_dropout": {"image": 0.0, "audio": 0.0},
      "aux_loss_weight": 0.0,
      "gradient_modulation": {"name": "none", "alpha": 0.5}})
  for k, v in kw.items():
    *parents, leaf = k.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = v
  return c


@pytest.mark.parametrize("overrides, key", [
    ({"modality_dropout.audio": 1.5}, "modality_dropout.audio"),
    ({"aux_loss_weight": -1.0}, "aux_loss_weight"),
    ({"gradient_modulation.name": "ogm"}, "gradient_modulation.name"),
    ({"gradient_modulation.name": "ogm_ge"}, "aux_loss_weight"),
])
def test_check_config_names_the_key(overrides, key):
  with pytest.raises(ValueError, match=key):
    balancing.check_config(_balancing_config(**overrides))


class TwoEncoders(nn.Module):
  """Linear "encoders" for two modalities, fused by a sum, with aux heads
  sown as the MultimodalModel does; records what the fusion saw present."""

  @nn.compact
  def __call__(self, batch, present=None, *, train=False):
    fused = 0.0
    for m in MODALITIES:
      h = nn.Dense(4, name=f"{m}_encoder")(batch[m])
      self.sow("modality_logits", m, nn.Dense(2, name=f"{m}_aux_head")(h))
      keep = 1.0 if present is None else present[m][:, None]
      fused = fused + keep * h
    return nn.Dense(2, name="head")(fused)


def _state_and_batch(mesh):
  rng = np.random.default_rng(0)
  batch = {m: jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
           for m in MODALITIES}
  batch["label"] = jnp.asarray(rng.integers(0, 2, 8), jnp.int32)
  shapes = {m: jax.ShapeDtypeStruct((8, 3), jnp.float32) for m in MODALITIES}
  state = create_train_state(TwoEncoders(), shapes, optax.sgd(0.1), seed=0,
                             sharding=parallel.replicated(mesh))
  return state, parallel.to_global(batch, mesh)


def _copy(state):
  """A copy for a step that donates its input state."""
  return jax.tree.map(jnp.copy, state)


def test_train_step_adds_weighted_aux_losses():
  mesh = parallel.make_mesh()
  state, batch = _state_and_batch(mesh)
  step = lambda w: steps.make_train_step(
      mesh, loss=classification_loss, seed=0, label_smoothing=0.0,
      schedule=optax.constant_schedule(0.1),
      modalities=MODALITIES, aux_loss_weight=w)
  new_state, m = step(2.0)(_copy(state), batch)
  assert {"aux_loss_audio", "aux_loss_image"} <= set(m)
  no_aux, _ = step(0.0)(_copy(state), batch)
  # The aux heads only move with a positive weight.
  assert not np.allclose(new_state.params["audio_aux_head"]["kernel"],
                         state.params["audio_aux_head"]["kernel"])
  np.testing.assert_array_equal(no_aux.params["audio_aux_head"]["kernel"],
                                state.params["audio_aux_head"]["kernel"])


def test_train_step_modality_dropout_reaches_the_model():
  mesh = parallel.make_mesh()
  state, batch = _state_and_batch(mesh)
  step = steps.make_train_step(
      mesh, loss=classification_loss, seed=0, label_smoothing=0.0,
      schedule=optax.constant_schedule(0.1),
      modalities=MODALITIES, modality_dropout={"audio": 1.0})
  new_state, _ = step(_copy(state), batch)
  # Audio always dropped: its encoder gets no gradient from the fused loss.
  np.testing.assert_array_equal(new_state.params["audio_encoder"]["kernel"],
                                state.params["audio_encoder"]["kernel"])
  assert not np.allclose(new_state.params["image_encoder"]["kernel"],
                         state.params["image_encoder"]["kernel"])


def test_train_step_ogm_ge_logs_coefficients_and_scales_the_dominant():
  mesh = parallel.make_mesh()
  state, batch = _state_and_batch(mesh)
  make = lambda name: steps.make_train_step(
      mesh, loss=classification_loss, seed=0, label_smoothing=0.0,
      schedule=optax.constant_schedule(0.1),
      modalities=MODALITIES, aux_loss_weight=1.0,
      gradient_modulation={"name": name, "alpha": 5.0, "noise": False})
  modulated, m = make("ogm_ge")(_copy(state), batch)
  plain, _ = make("none")(_copy(state), batch)
  k = {mod: float(m[f"ogm_coefficient_{mod}"]) for mod in MODALITIES}
  assert min(k.values()) < 1.0 and max(k.values()) == 1.0
  for mod in MODALITIES:
    delta = lambda s: s.params[f"{mod}_encoder"]["kernel"] - state.params[
        f"{mod}_encoder"]["kernel"]
    np.testing.assert_allclose(delta(modulated), k[mod] * delta(plain),
                               rtol=1e-4, atol=1e-7)


# Incomplete data: `available`, the data's presence mask.


def test_sample_presence_never_keeps_a_missing_modality():
  n = 20000
  available = {"audio": jnp.asarray(np.arange(n) % 2, jnp.float32),
               "image": jnp.asarray(np.arange(n) % 3 > 0, jnp.float32)}
  present = balancing.sample_presence(jax.random.key(0), n, MODALITIES,
                                      {"audio": 0.5, "image": 0.2},
                                      available)
  audio, image = np.asarray(present["audio"]), np.asarray(present["image"])
  has_audio, has_image = np.asarray(available["audio"]), np.asarray(
      available["image"])
  assert not (audio * (1 - has_audio)).any()
  assert not (image * (1 - has_image)).any()
  has_any = (has_audio + has_image) > 0
  assert ((audio + image)[has_any] >= 1).all()  # one it has is kept
  assert not (audio + image)[~has_any].any()  # it has none: none kept
  # With only image: dropped with 0.2, then rescued (kept: 1).
  only_image = (has_image == 1) & (has_audio == 0)
  np.testing.assert_allclose(image[only_image].mean(), 1.0)
  # With both: as without `available` (audio 0.55, image 0.85; 3 sigma at
  # n / 3 is about 0.015).
  both = (has_image == 1) & (has_audio == 1)
  np.testing.assert_allclose(audio[both].mean(), 0.55, atol=0.015)
  np.testing.assert_allclose(image[both].mean(), 0.85, atol=0.015)


def test_auxiliary_loss_and_score_leave_missing_examples_out():
  logits = {"audio": jnp.array([[2.0, 0.0], [0.0, 1.0], [jnp.nan, 0.0]])}
  labels = jnp.array([0, 0, 0])
  available = {"audio": jnp.array([1.0, 1.0, 0.0])}
  expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0))])
  loss = balancing.auxiliary_losses(logits, labels, 0.0, available)["audio"]
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  score = balancing.modality_scores(logits, labels, available)["audio"]
  p = [1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(1.0))]
  np.testing.assert_allclose(score, 3 * np.mean(p), rtol=1e-6)
  grads = jax.grad(lambda x: balancing.auxiliary_losses(
      {"audio": x}, labels, 0.0, available)["audio"])(logits["audio"])
  assert np.isfinite(np.asarray(grads)).all()
  np.testing.assert_array_equal(grads[2], 0.0)
