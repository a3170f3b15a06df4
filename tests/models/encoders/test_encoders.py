import jax
import jax.numpy as jnp
import pytest

from mmjax.models.encoders.audio import SpectrogramCNN
from mmjax.models.encoders.image import CNN


def test_image_cnn_token_shape():
  model = CNN(features=(4, 8), embed_dim=6)
  x = jnp.ones((2, 28, 28, 1))
  params = model.init(jax.random.key(0), x, train=False)
  out = model.apply(params, x, train=False)
  assert out.shape == (2, 7 * 7, 6)


def test_image_cnn_rejects_wrong_rank():
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    CNN().init(jax.random.key(0), jnp.ones((2, 28, 28)), train=False)


def test_spectrogram_cnn_token_shape_and_loudness_invariance():
  model = SpectrogramCNN(
      frontend={"sample_rate": 8000, "n_fft": 64, "hop_length": 32, "n_mels": 16},
      features=(4, 8), embed_dim=6)
  wave = jax.random.normal(jax.random.key(1), (3, 1024)) * 0.1
  params = model.init(jax.random.key(0), wave, train=False)
  out = model.apply(params, wave, train=False)
  frames = 1 + 1024 // 32
  assert out.shape == (3, frames // 4, 6)
  # Per-example standardisation of the log-mel makes a constant gain (an
  # additive dB offset) irrelevant while it stays above the top_db floor.
  louder = model.apply(params, wave * 2.0, train=False)
  assert jnp.abs(out - louder).max() < 1e-3
