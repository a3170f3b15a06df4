import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.encoders import audio
from mmjax.models.encoders.audio import SpectrogramCNN, SpectrogramTransformer
from mmjax.models.encoders.image import CNN, ResNet, ViT
from mmjax.models.registries import ENCODERS, module_config

FRONTEND = {"sample_rate": 8000, "n_fft": 64, "hop_length": 32, "n_mels": 16}
SAMPLES = 1024
FRAMES = 1 + SAMPLES // 32
TINY_TRANSFORMER = dict(hidden_dim=8, num_layers=1, num_heads=2, mlp_dim=16)


def _wave(batch=2, seed=1):
  return jax.random.normal(jax.random.key(seed), (batch, SAMPLES)) * 0.1


def _check_mask(tokens, mask):
  assert mask.shape == tokens.shape[:2] and mask.dtype == jnp.bool_
  if not isinstance(mask, jax.ShapeDtypeStruct):
    assert bool(mask.all())


def _abstract_init(model, x):
  """((tokens, mask), variables) as shapes only: nothing is compiled or run."""
  return jax.eval_shape(
      lambda: model.init_with_output(jax.random.key(0), x, train=False))


def test_image_cnn_token_shape():
  model = CNN(features=(4, 8), embed_dim=6)
  x = jnp.ones((2, 28, 28, 1))
  params = model.init(jax.random.key(0), x, train=False)
  out, mask = model.apply(params, x, train=False)
  assert out.shape == (2, 7 * 7, 6)
  _check_mask(out, mask)


def test_image_cnn_rejects_wrong_rank():
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    CNN().init(jax.random.key(0), jnp.ones((2, 28, 28)), train=False)


def test_spectrogram_cnn_token_shape_and_loudness_invariance():
  model = SpectrogramCNN(frontend=FRONTEND, features=(4, 8), embed_dim=6)
  wave = _wave(batch=3)
  params = model.init(jax.random.key(0), wave, train=False)
  out, mask = model.apply(params, wave, train=False)
  assert out.shape == (3, FRAMES // 4, 6)
  _check_mask(out, mask)
  # Per-example standardisation of the log-mel makes a constant gain (an
  # additive dB offset) irrelevant while it stays above the top_db floor.
  louder, _ = model.apply(params, wave * 2.0, train=False)
  assert jnp.abs(out - louder).max() < 1e-3


def test_band_normalization_is_cmvn():
  # A log-mel-like [batch, frames, features] with a fixed offset per band (a
  # spectral tilt, as a voice or channel filter gives in dB).
  spec = jax.random.normal(jax.random.key(0), (2, 30, 16))
  tilted = spec + jnp.linspace(-6.0, 6.0, 16)
  band = audio.standardize(tilted, "band")
  np.testing.assert_allclose(band.mean(axis=1), 0.0, atol=1e-5)
  np.testing.assert_allclose(band.std(axis=1), 1.0, atol=1e-4)
  # CMVN removes the tilt; per-utterance standardisation keeps it.
  np.testing.assert_allclose(band, audio.standardize(spec, "band"), atol=1e-5)
  utterance = audio.standardize(tilted, "utterance")
  assert float(jnp.abs(utterance - audio.standardize(spec, "utterance")).max()) > 0.5
  with pytest.raises(ValueError, match="normalization must be one of"):
    audio.standardize(spec, "global")
  # Mean per band, variance over the utterance: the tilt goes too, but a
  # near-silent band (leakage of 0.01) stays near 0 where CMVN blows it up
  # to unit variance.
  quiet = tilted.at[..., -4:].set(0.01 * spec[..., -4:])
  band_mean = audio.standardize(quiet, "band_mean")
  np.testing.assert_allclose(band_mean.mean(axis=1), 0.0, atol=1e-5)
  np.testing.assert_allclose(band_mean.std(axis=(1, 2)), 1.0, atol=1e-4)
  assert float(band_mean[..., -4:].std()) < 0.02
  assert float(audio.standardize(quiet, "band")[..., -4:].std()) > 0.9
  with pytest.raises(ValueError, match="normalization must be one of"):
    model = SpectrogramCNN(frontend=FRONTEND, normalization="global")
    model.init(jax.random.key(0), _wave(), train=False)


# --- registry --------------------------------------------------------------


@pytest.mark.parametrize("name,modality", [
    ("resnet", "image"), ("vit", "image"), ("spectrogram_transformer", "audio"),
    ("spectrogram_cnn", "audio")])
def test_new_encoders_are_registered_with_flat_defaults(name, modality):
  cls = ENCODERS.get(name)
  assert cls.modality == modality
  config = module_config(ENCODERS, name)
  for key, value in config.items():
    if key != "frontend":
      assert isinstance(value, (int, float, str, tuple)), (key, value)
  if modality == "audio":
    assert (config.freq_masks, config.freq_mask_width, config.time_masks,
            config.time_mask_width) == (0, 8, 0, 10)


# --- vit -------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["none", "cls", "mean"])
@pytest.mark.parametrize("patch_size,patch_tokens", [((4, 4), 4), ((2, 4), 8),
                                                     ((8, 8), 1)])
def test_vit_token_shape(pool, patch_size, patch_tokens):
  model = ViT(patch_size=patch_size, pool=pool, **TINY_TRANSFORMER)
  (tokens, mask), params = _abstract_init(model, jnp.ones((2, 8, 8, 1)))
  assert tokens.shape == (2, patch_tokens if pool == "none" else 1, 8)
  assert tokens.dtype == jnp.float32
  _check_mask(tokens, mask)
  transformer = params["params"]["transformer"]
  assert ("cls" in transformer) == (pool == "cls")
  # Learned positions cover the CLS token too.
  assert transformer["position"]["embedding"].shape == (
      1, patch_tokens + (pool == "cls"), 8)


def test_vit_pools_agree_with_patch_tokens():
  kwargs = dict(patch_size=(4, 4), **TINY_TRANSFORMER)
  x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1))
  params = ViT(**kwargs).init(jax.random.key(0), x, train=False)
  tokens, _ = ViT(**kwargs).apply(params, x, train=False)
  mean, _ = ViT(pool="mean", **kwargs).apply(params, x, train=False)
  np.testing.assert_allclose(mean[:, 0], tokens.mean(axis=1), atol=1e-6)


def test_vit_rejects_indivisible_image_and_unknown_pool():
  with pytest.raises(ValueError, match=r"10x8.*patch_size=\(4, 4\)"):
    ViT(**TINY_TRANSFORMER).init(jax.random.key(0), jnp.ones((2, 10, 8, 1)),
                                 train=False)
  with pytest.raises(ValueError, match="pool"):
    ViT(pool="max", **TINY_TRANSFORMER).init(
        jax.random.key(0), jnp.ones((2, 8, 8, 1)), train=False)
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    ViT(**TINY_TRANSFORMER).init(jax.random.key(0), jnp.ones((2, 8, 8)),
                                 train=False)


# --- resnet ----------------------------------------------------------------


@pytest.mark.parametrize("stage_sizes,side", [((1, 1, 1), 7), ((1, 2), 14),
                                              ((1,), 28)])
def test_resnet_token_shape(stage_sizes, side):
  model = ResNet(stage_sizes=stage_sizes, width=4, num_groups=2, embed_dim=6)
  (tokens, mask), variables = _abstract_init(model, jnp.ones((2, 28, 28, 1)))
  assert "batch_stats" not in variables
  assert tokens.shape == (2, side * side, 6)
  _check_mask(tokens, mask)
  params = variables["params"]
  assert params["stage0_block0"]["conv1"]["kernel"].shape == (3, 3, 4, 4)
  assert "projection" not in params["stage0_block0"]
  if len(stage_sizes) > 1:
    # Doubled width and a 1x1 projection where the shape changes.
    assert params["stage1_block0"]["projection"]["kernel"].shape == (1, 1, 4, 8)
    assert "projection" not in params.get("stage1_block1", {})


def test_resnet_rejects_unknown_norm():
  with pytest.raises(ValueError, match="norm"):
    ResNet(norm="layer").init(jax.random.key(0), jnp.ones((2, 8, 8, 1)),
                              train=False)


def test_resnet_batch_norm_statistics():
  model = ResNet(stage_sizes=(1, 1), width=4, norm="batch", embed_dim=6)
  x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  stats = variables["batch_stats"]
  assert set(stats) >= {"stem_norm", "stage0_block0", "stage1_block0"}
  assert "projection_norm" in stats["stage1_block0"]

  (tokens, _), updates = model.apply(variables, x, train=True,
                                     mutable=["batch_stats"])
  assert tokens.shape == (4, 4 * 4, 6)
  new_stats = updates["batch_stats"]
  # Momentum 0.9 from the initial mean 0: new mean = 0.1 * batch mean of the
  # stem conv's output.
  stem = nn.Conv(4, (3, 3), use_bias=False).apply(
      {"params": variables["params"]["stem"]}, x)
  np.testing.assert_allclose(new_stats["stem_norm"]["mean"],
                             0.1 * stem.mean(axis=(0, 1, 2)), rtol=1e-4,
                             atol=1e-7)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), stats, new_stats)
  assert all(jax.tree.leaves(changed))

  trained = {"params": variables["params"], "batch_stats": new_stats}
  other = x.at[1:].set(jax.random.uniform(jax.random.key(2), (3, 8, 8, 1)))
  # Running averages: an example's output does not depend on the rest of the
  # batch ...
  eval_a, _ = model.apply(trained, x, train=False)
  eval_b, _ = model.apply(trained, other, train=False)
  np.testing.assert_allclose(eval_a[0], eval_b[0], rtol=1e-5, atol=1e-6)
  # ... whereas batch statistics in training make it depend on it.
  (train_a, _), _ = model.apply(trained, x, train=True, mutable=["batch_stats"])
  (train_b, _), _ = model.apply(trained, other, train=True,
                                mutable=["batch_stats"])
  assert jnp.abs(train_a[0] - train_b[0]).max() > 1e-3


# --- spectrogram_transformer -----------------------------------------------


@pytest.mark.parametrize("pool", ["none", "cls", "mean"])
@pytest.mark.parametrize("patch_size", [(8, 8), (4, 16), (3, 4)])
def test_spectrogram_transformer_token_shape_keeps_every_frame(pool,
                                                               patch_size):
  model = SpectrogramTransformer(frontend=FRONTEND, patch_size=patch_size,
                                 pool=pool, **TINY_TRANSFORMER)
  (tokens, mask), params = _abstract_init(model, _wave())
  # 33 frames: the last, partial time patch is zero-padded, not dropped.
  patches = math.ceil(FRAMES / patch_size[0]) * (16 // patch_size[1])
  assert tokens.shape == (2, patches if pool == "none" else 1, 8)
  assert tokens.dtype == jnp.float32
  _check_mask(tokens, mask)
  assert params["params"]["transformer"]["position"]["embedding"].shape == (
      1, patches + (pool == "cls"), 8)


def test_spectrogram_transformer_rejects_indivisible_mels():
  model = SpectrogramTransformer(frontend={**FRONTEND, "n_mels": 12},
                                 **TINY_TRANSFORMER)
  with pytest.raises(ValueError, match=r"n_mels=12.*patch_size=\(8, 8\)"):
    model.init(jax.random.key(0), _wave(), train=False)


@pytest.mark.parametrize("cls,kwargs", [
    (SpectrogramTransformer, TINY_TRANSFORMER),
    (SpectrogramCNN, dict(features=(4,), embed_dim=6))])
def test_spec_augment_only_in_training_and_driven_by_augment_rng(cls, kwargs):
  masks = dict(freq_masks=2, freq_mask_width=4, time_masks=2,
               time_mask_width=6)
  model = cls(frontend=FRONTEND, **masks, **kwargs)
  plain = cls(frontend=FRONTEND, **kwargs)
  wave = _wave()
  params = model.init(jax.random.key(0), wave, train=False)
  reference, _ = plain.apply(params, wave, train=False)
  rngs = lambda seed: {"augment": jax.random.key(seed)}

  # Evaluation: nothing random, identical to the model without masks.
  evaluated, _ = model.apply(params, wave, train=False, rngs=rngs(1))
  np.testing.assert_array_equal(evaluated, reference)
  # No masks: training needs no augment rng and changes nothing (no dropout).
  trained_plain, _ = plain.apply(params, wave, train=True)
  np.testing.assert_allclose(trained_plain, reference, atol=1e-6)

  a, _ = model.apply(params, wave, train=True, rngs=rngs(1))
  a_again, _ = model.apply(params, wave, train=True, rngs=rngs(1))
  b, _ = model.apply(params, wave, train=True, rngs=rngs(2))
  assert jnp.abs(a - reference).max() > 1e-3
  np.testing.assert_array_equal(a, a_again)
  assert jnp.abs(a - b).max() > 1e-3
  with pytest.raises(Exception, match="augment"):
    model.apply(params, wave, train=True)
