"""Corruption augmentation, the reliability heads and the learned drop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import av_digits
from mmjax import parallel
from mmjax.analysis.corruptions import CORRUPTIONS, Corruption
from mmjax.models import multimodal
from mmjax.objectives.classification import classification_loss
from mmjax.train import config_checks, corruption_training, steps
from mmjax.train.state import create_train_state


def _batch(size=64, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(400) / 8000.0
  return {
      "image": jnp.asarray(rng.uniform(0.5, 1.0, (size, 8, 8, 1)), jnp.float32),
      "audio": jnp.asarray(np.sin(2 * np.pi * rng.uniform(100, 900, (size, 1))
                                  * t), jnp.float32),
      "label": jnp.asarray(rng.integers(0, 10, size), jnp.int32),
  }


def _changed(before, after):
  axes = tuple(range(1, before.ndim))
  return np.asarray(jnp.any(before != after, axis=axes))


def test_corrupt_batch_corrupts_one_modality_of_the_selected_examples():
  batch = _batch()
  families = corruption_training.families_by_modality(
      ("image_gaussian_noise", "audio_white_noise"))
  available = {"image": jnp.ones((64,)),
               "audio": jnp.asarray(np.arange(64) >= 16, jnp.float32)}
  out, corrupted = jax.jit(
      lambda r, b: corruption_training.corrupt_batch(
          r, b, families, 0.5, available))(jax.random.key(3), batch)
  image, audio = (np.asarray(corrupted[m]) > 0.5 for m in ("image", "audio"))
  # Exactly the flagged examples changed, never both modalities, never a
  # modality the example lacks; the labels untouched.
  np.testing.assert_array_equal(_changed(batch["image"], out["image"]), image)
  np.testing.assert_array_equal(_changed(batch["audio"], out["audio"]), audio)
  assert not (image & audio).any()
  assert not audio[:16].any()
  np.testing.assert_array_equal(out["label"], batch["label"])
  # About half the examples (64 draws: 0.5 +- 0.19 at 3 sigma).
  assert 0.3 <= (image | audio).mean() <= 0.7
  assert image.any() and audio.any()


def test_corrupt_batch_with_probability_zero_is_the_identity():
  batch = _batch()
  families = corruption_training.families_by_modality(("image_occlusion",))
  out, corrupted = jax.jit(lambda r, b: corruption_training.corrupt_batch(
      r, b, families, 0.0))(jax.random.key(0), batch)
  np.testing.assert_array_equal(out["image"], batch["image"])
  assert float(corrupted["image"].sum()) == 0.0


def test_every_family_and_level_is_drawn():
  # Family "add" adds its level, family "sub" subtracts it: the change of a
  # constant input names the (family, level) pair drawn.
  add = Corruption("image", lambda r, x, l: x + l, (1., 2., 3., 4., 5.), "u")
  sub = Corruption("image", lambda r, x, l: x - l, (1., 2., 3.), "u")
  batch = {"image": jnp.zeros((2, 1, 1, 1)), "label": jnp.zeros((2,), int)}
  draw = jax.jit(lambda r: corruption_training.corrupt_batch(
      r, batch, {"image": (add, sub)}, 1.0)[0]["image"][0, 0, 0, 0])
  seen = {float(draw(jax.random.key(i))) for i in range(300)}
  assert seen == {1., 2., 3., 4., 5., -1., -2., -3.}


def test_reliability_losses_are_binary_cross_entropy_over_available():
  logits = {"image": jnp.asarray([2.0, -1.0, 0.5, 3.0])}
  corrupted = {"image": jnp.asarray([0.0, 1.0, 1.0, 0.0])}
  available = {"image": jnp.asarray([1.0, 1.0, 1.0, 0.0])}
  targets = corruption_training.reliability_targets(
      "corruption", corrupted, {}, jnp.zeros((4,), jnp.int32))
  np.testing.assert_array_equal(targets["image"], [1., 0., 0., 1.])
  got = corruption_training.reliability_losses(logits, targets, available)
  p = 1 / (1 + np.exp(-np.asarray([2.0, -1.0, 0.5])))
  expected = -np.mean([np.log(p[0]), np.log(1 - p[1]), np.log(1 - p[2])])
  np.testing.assert_allclose(got["image"], expected, rtol=1e-6)
  all_clean = corruption_training.reliability_losses(logits, None)
  np.testing.assert_allclose(
      all_clean["image"],
      -np.mean(np.log(1 / (1 + np.exp(-np.asarray([2.0, -1.0, 0.5, 3.0]))))),
      rtol=1e-6)


def test_true_class_probability_target_and_its_loss():
  logits = {"audio": jnp.asarray([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])}
  labels = jnp.asarray([0, 2])
  targets = corruption_training.reliability_targets(
      "true_class_probability", {"audio": jnp.zeros((2,))}, logits, labels)
  p = np.exp([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
  p /= p.sum(1, keepdims=True)
  np.testing.assert_allclose(targets["audio"], [p[0, 0], p[1, 2]], rtol=1e-6)
  # A soft target: the loss is smallest where sigmoid(logit) = target.
  def loss(x):
    return float(corruption_training.reliability_losses(
        {"audio": jnp.full((2,), x)}, {"audio": jnp.full((2,), 0.3)})["audio"])
  best = np.log(0.3 / 0.7)
  assert loss(best) < loss(best + 0.2) and loss(best) < loss(best - 0.2)
  with pytest.raises(ValueError, match="reliability.target"):
    corruption_training.reliability_targets("entropy", {}, logits, labels)


def test_keep_reliable_drops_below_threshold_and_never_empties():
  present = {"image": jnp.asarray([1., 1., 1., 0.]),
             "audio": jnp.asarray([1., 1., 1., 1.])}
  logits = {"image": jnp.asarray([3., -3., -1., -5.]),
            "audio": jnp.asarray([3., 3., -3., -4.])}
  kept = multimodal.keep_reliable(present, logits, 0.5)
  # Both reliable; image dropped; both unreliable -> the more reliable
  # (image, p=0.27 > 0.05) kept; image missing -> audio kept though
  # unreliable (the only one present).
  np.testing.assert_array_equal(kept["image"], [1., 0., 1., 0.])
  np.testing.assert_array_equal(kept["audio"], [1., 1., 0., 1.])
  strict = multimodal.keep_reliable(present, logits, 0.99)
  np.testing.assert_array_equal(strict["image"], [1., 0., 1., 0.])
  np.testing.assert_array_equal(strict["audio"], [0., 1., 0., 1.])


def _tiny_config(**overrides):
  c = av_digits.get_config()
  c.model.encoders.image.features = (4, 8)
  c.model.encoders.image.embed_dim = 8
  c.model.encoders.audio.features = (4, 8)
  c.model.encoders.audio.embed_dim = 8
  c.model.fusion.hidden_dims = (16,)
  c.corruption_augmentation.probability = 1.0
  c.corruption_augmentation.families = ("image_gaussian_noise",)
  c.reliability.loss_weight = 1.0
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def _inputs(size=8):
  rng = np.random.default_rng(0)
  return {"image": jnp.asarray(rng.uniform(0, 1, (size, 28, 28, 1)),
                               jnp.float32),
          "audio": jnp.asarray(rng.normal(0, 0.1, (size, 8000)), jnp.float32),
          "label": jnp.asarray(rng.integers(0, 10, size), jnp.int32)}


def test_model_marks_a_modality_judged_corrupted_missing_at_inference():
  config = _tiny_config()
  model = multimodal.build_classifier(config)
  inputs = _inputs()
  variables = jax.jit(model.init)(jax.random.key(0), inputs)
  assert "image_reliability_head" in variables["params"]

  def with_image_bias(bias):
    params = jax.tree.map(lambda x: x, variables["params"])
    params["image_reliability_head"] = {
        "kernel": jnp.zeros_like(params["image_reliability_head"]["kernel"]),
        "bias": jnp.full((1,), bias)}
    params["audio_reliability_head"] = {
        "kernel": jnp.zeros_like(params["audio_reliability_head"]["kernel"]),
        "bias": jnp.full((1,), 8.0)}
    return {**variables, "params": params}

  apply = jax.jit(model.apply)
  ones, zeros = jnp.ones((8,)), jnp.zeros((8,))
  image_missing = {"image": zeros, "audio": ones}
  unreliable = with_image_bias(-5.0)
  np.testing.assert_allclose(
      apply(unreliable, inputs),
      apply(unreliable, inputs, image_missing), rtol=1e-6)
  reliable = with_image_bias(5.0)
  full = apply(reliable, inputs, {"image": ones, "audio": ones})
  np.testing.assert_allclose(apply(reliable, inputs), full, rtol=1e-6)
  assert not np.allclose(full, apply(reliable, inputs, image_missing))
  # The threshold is the config's: at 0.999 the image's probability of
  # 0.993 drops it, the audio's 0.9997 keeps it.
  config.reliability.threshold = 0.999
  strict = multimodal.build_classifier(config)
  np.testing.assert_allclose(jax.jit(strict.apply)(reliable, inputs),
                             apply(reliable, inputs, image_missing),
                             rtol=1e-6)


def test_train_step_corrupts_inputs_and_trains_the_reliability_heads():
  mesh = parallel.make_mesh()
  config = _tiny_config()
  model = multimodal.build_classifier(config)
  inputs = _inputs(16)
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                        {m: inputs[m] for m in ("image", "audio")})
  state = create_train_state(model, shapes, optax.sgd(0.1), seed=0,
                             sharding=parallel.replicated(mesh))
  batch = parallel.to_global(inputs, mesh)

  def run(weight, probability, target="corruption"):
    step = steps.make_train_step(
        mesh, loss=classification_loss, seed=0, label_smoothing=0.0,
        schedule=optax.constant_schedule(0.1), modalities=("image", "audio"),
        corruption_augmentation={"probability": probability,
                                 "families": ("image_gaussian_noise",)},
        reliability_loss_weight=weight, reliability_target=target)
    return step(jax.tree.map(jnp.copy, state), batch)

  trained, metrics = run(1.0, 1.0)
  assert {"reliability_loss_image", "reliability_loss_audio"} <= set(metrics)
  head = lambda s: np.asarray(s.params["image_reliability_head"]["kernel"])
  assert not np.allclose(head(trained), head(state))
  untrained, clean = run(0.0, 0.0)
  np.testing.assert_array_equal(head(untrained), head(state))
  # The corrupted images reach the model: "loss" is the objective's alone
  # (the reliability loss is not in it), and the parameters are the same.
  assert float(clean["loss"]) != float(metrics["loss"])
  # The true-class-probability target is learned instead of clean/corrupted
  # (same forward pass, so the objective's loss is the same).
  _, tcp = run(1.0, 1.0, "true_class_probability")
  assert float(tcp["loss"]) == float(metrics["loss"])
  assert float(tcp["reliability_loss_image"]) != float(
      metrics["reliability_loss_image"])


@pytest.mark.parametrize("overrides, key", [
    ({"corruption_augmentation.probability": 1.5},
     "corruption_augmentation.probability"),
    ({"corruption_augmentation.families": ("image_fog",)},
     "corruption_augmentation.families"),
    ({"corruption_augmentation.families": ("image_occlusion",),
      "modalities": ("audio",), "reliability.loss_weight": 0.0},
     "corruption_augmentation.families"),
    ({"corruption_augmentation.families": ()},
     "corruption_augmentation.families"),
    ({"corruption_augmentation.probability": 0.0},
     "corruption_augmentation.probability"),
    ({"reliability.threshold": 1.0}, "reliability.threshold"),
    ({"reliability.loss_weight": -1.0}, "reliability.loss_weight"),
    ({"reliability.target": "entropy"}, "reliability.target"),
    ({"reliability.target": "true_class_probability",
      "aux_loss_weight": 0.0}, "aux_loss_weight"),
])
def test_check_config_names_the_key(overrides, key):
  with pytest.raises(ValueError, match=key.replace(".", r"\.")):
    config_checks.check(_tiny_config(**overrides))


def test_families_of_other_modalities_are_ignored():
  # An audio-only baseline keeps the experiment's list of families.
  config = _tiny_config(**{"modalities": ("audio",),
                           "corruption_augmentation.probability": 0.5,
                           "reliability.loss_weight": 0.0})
  config.corruption_augmentation.families = av_digits.CORRUPTION_TRAIN_FAMILIES
  config_checks.check(config)


def test_registered_families_cover_both_modalities():
  by_modality = corruption_training.families_by_modality(tuple(CORRUPTIONS))
  assert set(by_modality) == {"image", "audio"}


def test_trained_reliability_head_flags_the_corrupted_modality(tiny_config,
                                                               tmp_path):
  """After a tiny training with image noise augmentation, the image's
  reliability falls on noisy images and the model drops them.

  Measured (2026-12-06, 60 steps, batch 32, the first 1,000 validation
  examples): the probability that the image is clean averages 0.77 on
  clean images (97.4 % kept, >= 0.5) and 0.09 on images with Gaussian
  noise std 0.8 (100 % dropped); an untrained head gives about 0.5 to
  both."""
  from mmjax import objectives  # pylint: disable=g-import-not-at-top
  from mmjax.analysis.corruptions import add_gaussian_noise  # pylint: disable=g-import-not-at-top
  from mmjax.evaluation import restore  # pylint: disable=g-import-not-at-top
  from mmjax.train import loop  # pylint: disable=g-import-not-at-top
  config = tiny_config(**{
      "num_train_steps": 60, "eval_every_steps": 60,
      "checkpoint_every_steps": 60, "eval_splits": ("validation",),
      "corruption_augmentation.probability": 0.5,
      "corruption_augmentation.families": ("image_gaussian_noise",),
      "reliability.loss_weight": 1.0})
  loop.train_and_evaluate(config, tmp_path)
  _, state, manager, evaluator, _ = restore.restore_for_evaluation(
      config, tmp_path, objectives.resolve(config))
  manager.close()
  batch = next(iter(evaluator.local_batches("validation")))
  inputs = {m: jnp.asarray(batch[m]) for m in config.modalities}

  @jax.jit
  def reliability(inputs):
    _, updates = state.apply_fn(state.variables(state.params), inputs,
                                train=False, mutable=["intermediates"])
    return updates["intermediates"]["image_reliability"][0]

  clean = np.asarray(reliability(inputs))
  noisy = np.asarray(reliability({**inputs, "image": add_gaussian_noise(
      jax.random.key(0), inputs["image"], 0.8)}))
  assert clean.mean() > noisy.mean() + 0.5
  assert (clean >= 0.5).mean() > 0.9
  assert (noisy < 0.5).mean() > 0.9
