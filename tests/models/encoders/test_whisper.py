"""Whisper's log-mel features and the `whisper_encoder` against
`transformers` (WhisperFeatureExtractor, WhisperModel's encoder).

Measured (CPU, float32): features vs the extractor's numpy path at most
3e-6 (80 bins) and 1.3e-5 (128 bins), vs its default (torch) path 3.2e-5;
waveform -> encoder vs extractor + Hugging Face encoder about 1e-6. The
bounds below leave room for other CPUs and XLA versions.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.encoders.whisper import WhisperEncoder
from mmjax.models.layers import whisper_features
from mmjax.pretrained.load import load_hf_encoder
from mmjax.pretrained.whisper import WhisperFamily
from tests.pretrained import spec_whisper

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

FEATURES_ATOL = 1e-4
ENCODER_ATOL = 1e-4
SR = whisper_features.SAMPLE_RATE


def noise_and_chirp(samples, seed, gain=1.0):
  """A 100 Hz -> 7 kHz chirp plus white noise, float32 `[samples]`."""
  t = np.arange(samples) / SR
  chirp = 0.5 * np.sin(2 * np.pi * (100 * t + 6900 / (2 * t[-1]) * t ** 2))
  noise = 0.05 * np.random.default_rng(seed).standard_normal(samples)
  return (gain * (chirp + noise)).astype(np.float32)


def waveforms(samples):
  """`[2, samples]`: a loud and a quiet example (per-example clamping)."""
  return np.stack([noise_and_chirp(samples, 1),
                   noise_and_chirp(samples, 2, gain=0.1)])


def extractor_numpy(waveform, n_mels, max_length):
  """WhisperFeatureExtractor's numpy features `[batch, n_mels, frames]` of
  `waveform` padded or truncated to `max_length` samples."""
  fe = transformers.WhisperFeatureExtractor(feature_size=n_mels)
  padded = fe.pad({"input_features": [w[:, None] for w in waveform]},
                  padding="max_length", max_length=max_length,
                  truncation=True)["input_features"]
  return fe._np_extract_fbank_features(padded[..., 0], "cpu")  # pylint: disable=protected-access


def mine(waveform, n_mels, n_samples):
  fn = jax.jit(whisper_features.whisper_log_mel, static_argnums=(1, 2))
  return np.asarray(fn(jnp.asarray(waveform), n_mels, n_samples)).transpose(
      0, 2, 1)


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("samples,n_samples", [
    (24_000, 32_000),  # 1.5 s padded to 2 s
    (32_000, 16_000),  # 2 s truncated to 1 s
    (24_000, None),  # as given
])
def test_features_match_the_feature_extractor(n_mels, samples, n_samples):
  x = waveforms(samples)
  reference = extractor_numpy(x, n_mels, n_samples or samples)
  got = mine(x, n_mels, n_samples)
  assert got.shape == reference.shape == (2, n_mels, (n_samples or samples)
                                          // 160)
  np.testing.assert_allclose(got, reference, atol=FEATURES_ATOL, rtol=0)


def test_features_default_to_the_30_s_window_and_match_the_extractor_call():
  x = waveforms(20_000)
  reference = transformers.WhisperFeatureExtractor()(
      list(x), sampling_rate=SR, return_tensors="np").input_features
  got = mine(x, 80, whisper_features.CHUNK_SAMPLES)
  assert got.shape == reference.shape == (2, 80, 3000)
  np.testing.assert_allclose(got, reference, atol=FEATURES_ATOL, rtol=0)


def test_features_errors():
  with pytest.raises(ValueError, match="160 samples"):
    whisper_features.whisper_log_mel(jnp.zeros((2, 100)), n_samples=None)
  with pytest.raises(ValueError, match="rank 1"):
    whisper_features.whisper_log_mel(jnp.zeros(1000))
  with pytest.raises(ValueError, match="n_samples"):
    whisper_features.whisper_log_mel(jnp.zeros((1, 1000)), n_samples=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """A tiny random WhisperModel (tests/pretrained/spec_whisper.py)."""
  directory = tmp_path_factory.mktemp("whisper")
  torch.manual_seed(0)
  spec_whisper.build(directory)
  return directory


def load(directory, **attributes):
  """(`whisper_encoder`, params) loaded from a Hugging Face checkpoint."""
  hf_config = transformers.WhisperConfig.from_pretrained(directory).to_dict()
  fixed = WhisperFamily().encoder_attributes(hf_config)
  encoder = WhisperEncoder(**fixed, **attributes)
  x = jnp.zeros((1, 2 * fixed["max_source_positions"], fixed["n_mels"]))
  features = WhisperEncoder(**fixed, input_features=True)
  abstract = jax.eval_shape(
      lambda: features.init(jax.random.key(0), x, train=False))["params"]
  params = load_hf_encoder(str(directory), {"name": "whisper_encoder",
                                            **fixed}, abstract, "test")
  return encoder, params


def hf_encoder(directory, model_class=None):
  model_class = model_class or transformers.WhisperModel
  model = model_class.from_pretrained(directory).eval()
  return model.get_encoder()


def hf_last_hidden_state(encoder, features):
  """`features` `[batch, n_mels, frames]` numpy -> `[batch, tokens, D]`."""
  with torch.no_grad():
    return encoder(input_features=torch.from_numpy(
        np.ascontiguousarray(features))).last_hidden_state.numpy()


@pytest.mark.parametrize("samples", [4_000, 8_000])  # padded / truncated
def test_waveform_to_tokens_matches_extractor_and_hf_encoder(checkpoint,
                                                             samples):
  window = 2 * spec_whisper.MAX_SOURCE_POSITIONS * 160
  x = waveforms(samples)
  features = transformers.WhisperFeatureExtractor()(
      list(x), sampling_rate=SR, max_length=window,
      return_tensors="np").input_features
  reference = hf_last_hidden_state(hf_encoder(checkpoint), features)
  encoder, params = load(checkpoint)
  tokens, mask = jax.jit(lambda p, w: encoder.apply({"params": p}, w,
                                                    train=False))(params, x)
  assert tokens.shape == reference.shape == (
      2, spec_whisper.MAX_SOURCE_POSITIONS, 32)
  assert mask.dtype == jnp.bool_ and bool(mask.all())
  np.testing.assert_allclose(tokens, reference, atol=ENCODER_ATOL, rtol=0)


def test_conditional_generation_checkpoint_loads(tmp_path):
  """`model.encoder.` weights (WhisperForConditionalGeneration); the decoder
  and proj_out are ignored."""
  torch.manual_seed(1)
  config = transformers.WhisperConfig(**spec_whisper.TINY)
  model = transformers.WhisperForConditionalGeneration(config)
  spec_whisper.perturb(model, torch)
  model.save_pretrained(tmp_path)
  features = spec_whisper.mmjax_inputs()
  reference = hf_last_hidden_state(
      hf_encoder(tmp_path, transformers.WhisperForConditionalGeneration),
      features.transpose(0, 2, 1))
  encoder, params = load(tmp_path, input_features=True)
  tokens, _ = encoder.apply({"params": params}, features, train=False)
  np.testing.assert_allclose(tokens, reference, atol=ENCODER_ATOL, rtol=0)


def test_fewer_frames_use_the_first_positions(checkpoint):
  """20 frames (10 tokens) equal Hugging Face's encoder built with
  max_source_positions=10 and the first 10 stored positions."""
  frames = 20
  features = spec_whisper.mmjax_inputs(frames)
  encoder, params = load(checkpoint, input_features=True)
  tokens, mask = encoder.apply({"params": params}, features, train=False)
  assert tokens.shape == (2, frames // 2, 32) and mask.shape == (2, 10)

  full = hf_encoder(checkpoint)
  config = transformers.WhisperConfig(**{**spec_whisper.TINY,
                                         "max_source_positions": frames // 2})
  short = transformers.models.whisper.modeling_whisper.WhisperEncoder(
      config).eval()
  state = full.state_dict()
  state["embed_positions.weight"] = state["embed_positions.weight"][:frames //
                                                                    2]
  short.load_state_dict(state)
  reference = hf_last_hidden_state(short, features.transpose(0, 2, 1))
  np.testing.assert_allclose(tokens, reference, atol=ENCODER_ATOL, rtol=0)

  # An odd frame count: ceil(frames / 2) tokens.
  odd, _ = encoder.apply({"params": params}, features[:, :19], train=False)
  assert odd.shape == (2, 10, 32)


def test_waveform_without_pad_or_trim_equals_its_features(checkpoint):
  x = waveforms(3_200)  # 20 frames, fewer than the 32 of the window
  encoder, params = load(checkpoint, pad_or_trim=False)
  tokens, _ = encoder.apply({"params": params}, x, train=False)
  features = whisper_features.whisper_log_mel(jnp.asarray(x), 80, None)
  by_features, _ = load(checkpoint, input_features=True)[0].apply(
      {"params": params}, features, train=False)
  assert tokens.shape == (2, 10, 32)
  np.testing.assert_allclose(tokens, by_features, atol=1e-6, rtol=0)


def test_longer_input_raises_naming_max_source_positions(checkpoint):
  encoder, params = load(checkpoint, input_features=True)
  with pytest.raises(ValueError, match="max_source_positions=16"):
    encoder.apply({"params": params}, spec_whisper.mmjax_inputs(34),
                  train=False)
  encoder, params = load(checkpoint, pad_or_trim=False)
  with pytest.raises(ValueError, match="max_source_positions=16"):
    encoder.apply({"params": params}, waveforms(6_000), train=False)


def test_wrong_feature_width_and_pool_raise(checkpoint):
  encoder, params = load(checkpoint, input_features=True)
  with pytest.raises(ValueError, match="n_mels=80"):
    encoder.apply({"params": params}, np.zeros((2, 32, 128), np.float32),
                  train=False)
  encoder, params = load(checkpoint, pool="cls")
  with pytest.raises(ValueError, match="pool"):
    encoder.apply({"params": params}, waveforms(4_000), train=False)


def test_mean_pool_is_the_mean_token(checkpoint):
  x = waveforms(4_000)
  encoder, params = load(checkpoint)
  tokens, _ = encoder.apply({"params": params}, x, train=False)
  encoder, _ = load(checkpoint, pool="mean")
  pooled, mask = encoder.apply({"params": params}, x, train=False)
  assert pooled.shape == (2, 1, 32) and mask.shape == (2, 1)
  np.testing.assert_allclose(pooled[:, 0], tokens.mean(axis=1), atol=1e-6)


def test_from_scratch_defaults_use_sinusoidal_positions():
  encoder = WhisperEncoder(hidden_dim=16, num_layers=1, num_heads=2,
                           mlp_dim=32, max_source_positions=8)
  x = jnp.zeros((1, 16 * 160))
  params = encoder.init(jax.random.key(0), x, train=False)["params"]
  reference = transformers.models.whisper.modeling_whisper.sinusoids(8, 16)
  np.testing.assert_allclose(params["embed_positions"], reference.numpy(),
                             atol=1e-6)
