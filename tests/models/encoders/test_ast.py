"""The `spectrogram_transformer` encoder as the Audio Spectrogram Transformer
(Gong et al. 2021), end to end against Hugging Face `transformers`.

A tiny random `ASTModel` (tests/pretrained/spec_ast.py: 3 x 5 grid of
overlapping patches) is loaded through `mmjax.pretrained`; the reference is
waveform -> `ASTFeatureExtractor` -> `ASTModel`, mmjax computes the same
features inside the encoder from the waveform (`kaldi_fbank.ast_features`).
tests/pretrained/test_parity.py checks the same model given identical
`input_values` (within 1e-4).
"""

import functools
import warnings

import jax
import numpy as np
import pytest

from mmjax.pretrained import load as pretrained_load
from mmjax.models.encoders.audio import SpectrogramTransformer
from mmjax.models.registries import ENCODERS, split_options
from tests.pretrained import spec_ast

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

SAMPLE_RATE = 16000
MAX_LENGTH = spec_ast.TINY["max_length"]  # 32 frames: 5360 samples.
NUM_MEL_BINS = spec_ast.TINY["num_mel_bins"]
PATCHES = 3 * 5
# Measured max |mmjax - HF| on `waveforms` (jax 0.10.2 CPU, transformers
# 5.23): the features alone 1.9e-5 (4000 samples) and 5.6e-5 (6000; at 128
# mel bins they are within ~3e-4, tests/models/layers/test_kaldi_fbank.py);
# last_hidden_state 7.7e-6 and 1.2e-5, pooled 1.2e-6 and 9.5e-7. The bound
# is the parity tests' (identical input_values).
END_TO_END_ATOL = 1e-4


def _chirp(f0, f1, amplitude, samples):
  t = np.arange(samples) / SAMPLE_RATE
  duration = samples / SAMPLE_RATE
  return amplitude * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * duration) *
                                         t**2))


def waveforms(samples):
  """`[3, samples]` float32: white noise, a loud rising chirp, a falling
  chirp plus quiet noise."""
  rng = np.random.default_rng(samples)
  return np.stack([
      0.1 * rng.standard_normal(samples),
      _chirp(100, 7000, 0.9, samples),
      _chirp(6000, 300, 0.3, samples) + 0.01 * rng.standard_normal(samples),
  ]).astype(np.float32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  directory = tmp_path_factory.mktemp("hf_ast")
  torch.manual_seed(0)
  spec_ast.build(directory)
  return directory


def load(directory, inputs, **overrides):
  """(encoder, params) of the checkpoint in `directory`, built by
  `pretrained_encoder_config` with `overrides`."""
  config = pretrained_load.pretrained_encoder_config(
      str(directory), "spectrogram_transformer", **overrides).to_dict()
  kwargs, _ = split_options(config)
  name = kwargs.pop("name")
  encoder = ENCODERS.get(name)(**kwargs)
  abstract = jax.eval_shape(
      lambda: encoder.init(jax.random.key(0), inputs, train=False))["params"]
  params = pretrained_load.load_hf_encoder(str(directory),
                                           {"name": name, **kwargs},
                                           abstract, "test_ast")
  return encoder, params


def hf_input_values(waves):
  with warnings.catch_warnings():
    # Kaldi mel banks this narrow leave some filters empty; HF warns.
    warnings.simplefilter("ignore", UserWarning)
    extractor = transformers.ASTFeatureExtractor(
        num_mel_bins=NUM_MEL_BINS, max_length=MAX_LENGTH)
  return np.stack(extractor(list(waves), sampling_rate=SAMPLE_RATE)[
      "input_values"])


def test_checkpoint_fixes_ast_attributes(checkpoint):
  config = pretrained_load.pretrained_encoder_config(str(checkpoint),
                                                     "spectrogram_transformer")
  assert config.frontend.to_dict() == {
      "features": "ast_fbank", "max_length": MAX_LENGTH,
      "num_mel_bins": NUM_MEL_BINS}
  assert tuple(config.patch_size) == (8, 8)
  assert tuple(config.patch_stride) == (6, 4)  # (time, freq)
  assert config.patch_order == "frequency_major"
  assert config.distillation_token
  assert config.activation == "gelu"
  assert config.layer_norm_epsilon == 1e-12
  assert (config.hidden_dim, config.num_layers, config.num_heads,
          config.mlp_dim) == (32, 2, 4, 32)
  assert not config.input_features


# 4000 samples: 23 frames, padded to 32; 6000: 36 frames, the last 4 dropped.
@pytest.mark.parametrize("samples", [4000, 6000])
def test_waveform_end_to_end_matches_hf(checkpoint, samples):
  waves = waveforms(samples)
  model = transformers.ASTModel.from_pretrained(checkpoint).eval()
  with torch.no_grad():
    expected = model(input_values=torch.from_numpy(hf_input_values(waves)))
  got = {}
  for output, pool in [("last_hidden_state", "all"), ("pooled", "cls")]:
    encoder, params = load(checkpoint, waves, pool=pool)
    tokens, mask = jax.jit(functools.partial(encoder.apply, train=False))(
        {"params": params}, waves)
    assert bool(mask.all())
    got[output] = np.asarray(tokens if pool == "all" else tokens[:, 0])
  assert got["last_hidden_state"].shape == (3, 2 + PATCHES, 32)
  diffs = {
      "last_hidden_state": np.abs(got["last_hidden_state"] -
                                  expected.last_hidden_state.numpy()).max(),
      "pooled": np.abs(got["pooled"] - expected.pooler_output.numpy()).max()}
  assert max(diffs.values()) <= END_TO_END_ATOL, diffs


def test_classification_checkpoint_and_no_qkv_bias(tmp_path):
  """`ASTForAudioClassification` (prefix "audio_spectrogram_transformer.",
  classifier ignored) with qkv_bias=False (zero biases) loads exactly."""
  torch.manual_seed(1)
  config = transformers.ASTConfig(**spec_ast.TINY, qkv_bias=False,
                                  num_labels=3)
  model = transformers.ASTForAudioClassification(config)
  spec_ast.perturb(model.audio_spectrogram_transformer, torch)
  model.save_pretrained(tmp_path)
  values = spec_ast.mmjax_inputs()
  with torch.no_grad():
    expected = model.audio_spectrogram_transformer(
        input_values=torch.from_numpy(values)).pooler_output.numpy()
  encoder, params = load(tmp_path, values, pool="cls", input_features=True)
  tokens, _ = encoder.apply({"params": params}, values, train=False)
  np.testing.assert_allclose(tokens[:, 0], expected, rtol=0, atol=1e-4)


def test_ast_frontend_shapes_and_errors():
  ast = dict(hidden_dim=8, num_layers=1, num_heads=2, mlp_dim=16,
             patch_size=(8, 8), patch_stride=(6, 4),
             patch_order="frequency_major", distillation_token=True,
             pool="all")
  frontend = {"features": "ast_fbank", "max_length": MAX_LENGTH,
              "num_mel_bins": NUM_MEL_BINS}
  waves = waveforms(4000)
  (tokens, mask), variables = jax.eval_shape(
      lambda: SpectrogramTransformer(frontend=frontend, **ast).init_with_output(
          jax.random.key(0), waves, train=False))
  assert tokens.shape == mask.shape + (8,) == (3, 2 + PATCHES, 8)
  assert variables["params"]["transformer"]["position"]["embedding"].shape == (
      1, 2 + PATCHES, 8)
  with pytest.raises(ValueError, match=r"\['n_mels'\].*'ast_fbank'"):
    SpectrogramTransformer(frontend={**frontend, "n_mels": 16}, **ast).init(
        jax.random.key(0), waves, train=False)
  with pytest.raises(ValueError, match="input_features=True"):
    SpectrogramTransformer(frontend=frontend, input_features=True,
                           **ast).init(jax.random.key(0), waves, train=False)
  with pytest.raises(ValueError, match="patch_order"):
    SpectrogramTransformer(frontend=frontend, **{
        **ast, "patch_order": "diagonal"}).init(
            jax.random.key(0), waves, train=False)
  with pytest.raises(ValueError, match=r"smaller than one patch"):
    SpectrogramTransformer(frontend={**frontend, "max_length": 6}, **ast).init(
        jax.random.key(0), waves, train=False)
