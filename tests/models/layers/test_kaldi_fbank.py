"""Tests for mmjax.models.layers.kaldi_fbank against Hugging Face transformers.

Without torchaudio (as in this environment) `ASTFeatureExtractor` computes
its filter banks with `transformers.audio_utils.spectrogram` in float64 numpy
(symmetric Hann window, not povey), which is the reference here.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import transformers
from transformers import audio_utils

from mmjax.models.layers import kaldi_fbank

SAMPLE_RATE = 16000
N_SAMPLES = 24000  # 1.5 s: 1 + (24000 - 400) // 160 = 148 frames.
N_FRAMES = 148
# The requirement on the normalised features.
AST_ATOL = 1e-3
# Measured max |ours - ASTFeatureExtractor| (jax 0.10.2 CPU, transformers
# 5.23, numpy 2.4) on the `waveforms` fixture, normalised: white noise
# 2.5e-6, full-scale chirp 2.9e-4, chirp + noise mix 6.3e-5. The error sits
# in the chirp's bins ~110 dB below its peak; a plain float32 FFT there gave
# 2.8e-3 (hence the compensated DFT in kaldi_fbank).
# Log-domain tolerance of the same size for the unnormalised features
# (measured 2.6e-3 = 2.9e-4 * 2 * std).
LOG_ATOL = AST_ATOL * 2 * kaldi_fbank.AST_STD
# Measured max |kaldi_fbank - HF spectrogram| (povey, 80 bins, 20-7600 Hz)
# on the `waveforms` fixture, in the log: 1.6e-3 (chirp), 1.7e-5 (noise).
# Mel banks and windows: 3e-8.


def _chirp(f0, f1, amplitude):
  t = np.arange(N_SAMPLES) / SAMPLE_RATE
  duration = N_SAMPLES / SAMPLE_RATE
  return amplitude * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * duration) *
                                         t**2))


@pytest.fixture(scope="module")
def waveforms():
  """`[3, N_SAMPLES]` float32: white noise, a full-scale linear chirp
  100 Hz -> 7 kHz, and a falling chirp plus quiet noise, within [-1, 1]."""
  rng = np.random.default_rng(0)
  noise = 0.1 * rng.standard_normal(N_SAMPLES)
  mix = _chirp(6000, 300, 0.3) + 0.01 * rng.standard_normal(N_SAMPLES)
  return np.stack([noise, _chirp(100, 7000, 0.99), mix]).astype(np.float32)


def _hf_ast(waveforms, **kwargs):
  with warnings.catch_warnings():
    # HF warns that one of its 128 Kaldi mel filters is empty (so does Kaldi).
    warnings.simplefilter("ignore", UserWarning)
    extractor = transformers.ASTFeatureExtractor(**kwargs)
  out = extractor(list(waveforms), sampling_rate=SAMPLE_RATE)["input_values"]
  return np.stack(out)


@functools.lru_cache(maxsize=None)
def _jitted_ast(**kwargs):
  return jax.jit(functools.partial(kaldi_fbank.ast_features, **kwargs))


# 1024 (the default) pads 148 frames, 148 is exact, 60 truncates.
@pytest.mark.parametrize("max_length", [1024, N_FRAMES, 60])
def test_ast_features_match_hf_extractor(waveforms, max_length):
  expected = _hf_ast(waveforms, max_length=max_length)
  ours = np.asarray(_jitted_ast(max_length=max_length)(waveforms))
  assert ours.shape == expected.shape == (3, max_length, 128)
  assert ours.dtype == np.float32
  np.testing.assert_allclose(ours, expected, rtol=0, atol=AST_ATOL)
  if max_length > N_FRAMES:
    # Padding is zeros in the log domain, normalised like the rest.
    np.testing.assert_allclose(
        ours[:, N_FRAMES:],
        -kaldi_fbank.AST_MEAN / (2 * kaldi_fbank.AST_STD), rtol=0, atol=1e-6)


def test_ast_features_unnormalised_match_hf_extractor(waveforms):
  expected = _hf_ast(waveforms, max_length=200, do_normalize=False)
  ours = np.asarray(
      _jitted_ast(max_length=200, normalize=False)(waveforms))
  np.testing.assert_allclose(ours, expected, rtol=0, atol=LOG_ATOL)
  np.testing.assert_array_equal(ours[:, N_FRAMES:], 0.0)


def test_kaldi_fbank_povey_matches_hf_spectrogram(waveforms):
  """Kaldi defaults (povey window) with 80 bins and high_freq = -400 Hz."""
  mel_filters = audio_utils.mel_filter_bank(
      num_frequency_bins=257, num_mel_filters=80, min_frequency=20,
      max_frequency=7600, sampling_rate=SAMPLE_RATE, norm=None,
      mel_scale="kaldi", triangularize_in_mel_space=True)
  window = audio_utils.window_function(400, "povey", periodic=False)
  expected = np.stack([
      audio_utils.spectrogram(
          w, window, frame_length=400, hop_length=160, fft_length=512,
          power=2.0, center=False, preemphasis=0.97, mel_filters=mel_filters,
          log_mel="log", mel_floor=1.192092955078125e-07,
          remove_dc_offset=True).T for w in waveforms
  ])
  fn = jax.jit(functools.partial(kaldi_fbank.kaldi_fbank, num_mel_bins=80,
                                 high_freq=-400.0))
  ours = np.asarray(fn(waveforms))
  assert ours.shape == expected.shape == (3, N_FRAMES, 80)
  np.testing.assert_allclose(ours, expected, rtol=0, atol=LOG_ATOL)


def test_mel_banks_and_window_match_hf():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    expected = audio_utils.mel_filter_bank(
        num_frequency_bins=257, num_mel_filters=128, min_frequency=20,
        max_frequency=8000, sampling_rate=SAMPLE_RATE, norm=None,
        mel_scale="kaldi", triangularize_in_mel_space=True)
  np.testing.assert_allclose(
      kaldi_fbank.mel_banks(128, 512, SAMPLE_RATE, 20.0, 0.0), expected,
      rtol=0, atol=1e-7)
  for name, hf_name in (("hanning", "hann"), ("povey", "povey")):
    np.testing.assert_allclose(
        kaldi_fbank.window(name, 400),
        audio_utils.window_function(400, hf_name, periodic=False),
        rtol=0, atol=1e-7)


def test_jit_matches_eager_and_frame_count(waveforms):
  # 1 + (2000 - 400) // 160 = 11 frames.
  short = jnp.asarray(waveforms[:2, :2000])
  eager = kaldi_fbank.kaldi_fbank(short, window_type="hanning")
  jitted = jax.jit(functools.partial(kaldi_fbank.kaldi_fbank,
                                     window_type="hanning"))(short)
  assert jitted.shape == (2, 11, 128) and jitted.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=0,
                             atol=1e-5)
  ast = jax.jit(functools.partial(kaldi_fbank.ast_features,
                                  max_length=16))(short)
  assert ast.shape == (2, 16, 128) and ast.dtype == jnp.float32
  np.testing.assert_allclose(
      np.asarray(ast[:, :11]),
      (np.asarray(eager) - kaldi_fbank.AST_MEAN) / (2 * kaldi_fbank.AST_STD),
      rtol=0, atol=1e-5)


@pytest.mark.parametrize("fn", [kaldi_fbank.kaldi_fbank,
                                kaldi_fbank.ast_features])
def test_invalid_waveform_raises(fn):
  with pytest.raises(ValueError, match=r"\[batch, samples\].*rank 1"):
    fn(jnp.zeros(N_SAMPLES))
  with pytest.raises(ValueError, match=r"\[batch, samples\].*rank 3"):
    fn(jnp.zeros((2, 1, N_SAMPLES)))
  with pytest.raises(ValueError, match=r"399 samples .* one frame \(400"):
    fn(jnp.zeros((2, 399)))
