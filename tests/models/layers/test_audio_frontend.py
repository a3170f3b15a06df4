"""Tests for mmjax.models.layers.audio_frontend against librosa on speech."""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from mmjax.models.layers import audio_frontend

FSDD_DIR = (Path(__file__).resolve().parents[3].parent / "shared" / "data" /
            "fsdd" / "recordings")
# Six speakers' digits, 1475 to 4138 samples long, zero-padded to BATCH_LEN.
RECORDINGS = ("0_george_0.wav", "1_jackson_0.wav", "2_nicolas_5.wav",
              "5_theo_10.wav", "7_yweweler_20.wav", "9_george_3.wav")
BATCH_LEN = 8000
PARAMS = dict(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40)
LIBROSA_PARAMS = dict(sr=8000, n_fft=256, hop_length=80, n_mels=40)
N_MFCC = 20

# Tolerances, measured on RECORDINGS with jax 0.10.2 (CPU, float32) against
# librosa 0.11.0 fed float32 audio. librosa multiplies float32 frames by a
# float64 window, so its FFT effectively runs in float64; ours runs in
# float32, with errors ~1e-7 of each frame's norm.
# Hann window and filterbank: measured bit-identical to scipy / librosa.
FILTERBANK_ATOL = 1e-7
# |STFT|: max abs error measured 1.7e-7 of the recording's peak magnitude
# (over the stft configurations below).
STFT_ATOL_FRACTION = 5e-7
# Mel power: max abs error measured 2.8e-7 of the recording's peak; max
# relative error 2.2e-5 on elements above 1e-6 of the peak (8.9e-5 on all
# elements: bands ~70 dB down where the float32 FFT rounding dominates).
MEL_RTOL = 5e-5
MEL_ATOL_FRACTION = 5e-7
# Log-mel: max abs error measured 4.0e-4 dB (the 8.9e-5 relative error above
# is 10 log10(1 + 8.9e-5) = 3.9e-4 dB).
LOG_MEL_ATOL_DB = 1e-3
# MFCC: max abs error measured 1.2e-4.
MFCC_ATOL = 3e-4


@pytest.fixture(scope="module")
def waveforms():
  """`[6, BATCH_LEN]` float32 FSDD recordings, zero-padded at the end."""
  if not FSDD_DIR.is_dir():
    pytest.fail(f"FSDD recordings not found at {FSDD_DIR}")
  batch = np.zeros((len(RECORDINGS), BATCH_LEN), np.float32)
  for i, name in enumerate(RECORDINGS):
    path = FSDD_DIR / name
    if not path.is_file():
      pytest.fail(f"FSDD recording missing: {path}")
    audio, sample_rate = sf.read(path, dtype="int16")
    assert sample_rate == 8000 and audio.ndim == 1 and len(audio) < BATCH_LEN
    batch[i, :len(audio)] = audio / 32768
  return batch


@functools.lru_cache(maxsize=None)
def _jitted(name):
  fns = {
      "mel": audio_frontend.mel_spectrogram,
      "log_mel": audio_frontend.log_mel,
      "mfcc": functools.partial(audio_frontend.mfcc, n_mfcc=N_MFCC),
  }
  return jax.jit(functools.partial(fns[name], **PARAMS))


def _librosa_mel(y):
  return librosa.feature.melspectrogram(y=y, **LIBROSA_PARAMS).T


@pytest.mark.parametrize("n", [1, 7, 200, 255, 256])
def test_hann_window_matches_scipy(n):
  expected = scipy.signal.get_window("hann", n, fftbins=True)
  np.testing.assert_array_equal(
      audio_frontend.hann_window(n), expected.astype(np.float32))


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (8000, 256, 40, 0.0, None),
    (16000, 512, 80, 20.0, 7600.0),
    (8000, 255, 30, 100.0, 3000.0),
])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
  ours = audio_frontend.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
  expected = librosa.filters.mel(
      sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False,
      norm="slaney").T
  assert ours.dtype == np.float32
  np.testing.assert_allclose(ours, expected, rtol=0, atol=FILTERBANK_ATOL)


@pytest.mark.parametrize("n_fft,hop,win_length,center", [
    (256, 80, None, True),
    (256, 80, 200, True),
    (255, 64, None, True),
    (256, 80, None, False),
    (64, 100, None, True),
])
def test_stft_magnitude_matches_librosa(waveforms, n_fft, hop, win_length,
                                        center):
  y = waveforms[1]
  expected = np.abs(librosa.stft(
      y, n_fft=n_fft, hop_length=hop, win_length=win_length,
      center=center)).T
  ours = audio_frontend.stft(jnp.asarray(y[None]), n_fft, hop, win_length,
                             center)
  assert ours.dtype == jnp.complex64
  assert ours.shape == (1,) + expected.shape
  np.testing.assert_allclose(
      np.abs(ours[0]), expected, rtol=0,
      atol=STFT_ATOL_FRACTION * expected.max())


def test_mel_spectrogram_matches_librosa(waveforms):
  ours = np.asarray(_jitted("mel")(waveforms))
  for i, y in enumerate(waveforms):
    expected = _librosa_mel(y)
    np.testing.assert_allclose(
        ours[i], expected, rtol=MEL_RTOL,
        atol=MEL_ATOL_FRACTION * expected.max(), err_msg=RECORDINGS[i])


def test_log_mel_matches_librosa(waveforms):
  ours = np.asarray(_jitted("log_mel")(waveforms))
  for i, y in enumerate(waveforms):
    expected = librosa.power_to_db(_librosa_mel(y))
    np.testing.assert_allclose(
        ours[i], expected, rtol=0, atol=LOG_MEL_ATOL_DB, err_msg=RECORDINGS[i])


def test_power_to_db_clamps_each_example_separately(waveforms):
  mel = np.stack([_librosa_mel(y) for y in waveforms[:2]])
  mel[1] *= 1e-6  # 60 dB quieter: a batch-wide max would clip it wrongly.
  ours = np.asarray(audio_frontend.power_to_db(jnp.asarray(mel)))
  for i in range(2):
    np.testing.assert_allclose(
        ours[i], librosa.power_to_db(mel[i]), rtol=0, atol=LOG_MEL_ATOL_DB)


def test_mfcc_matches_librosa(waveforms):
  ours = np.asarray(_jitted("mfcc")(waveforms))
  for i, y in enumerate(waveforms):
    expected = librosa.feature.mfcc(y=y, n_mfcc=N_MFCC, **LIBROSA_PARAMS).T
    np.testing.assert_allclose(
        ours[i], expected, rtol=0, atol=MFCC_ATOL, err_msg=RECORDINGS[i])


@pytest.mark.parametrize("name", ["mel", "log_mel", "mfcc"])
def test_batched_equals_single(waveforms, name):
  batched = np.asarray(_jitted(name)(waveforms))
  for i in range(len(waveforms)):
    alone = np.asarray(_jitted(name)(waveforms[i:i + 1]))[0]
    # Bit-identical on CPU; the slack only allows float32 reassociation.
    np.testing.assert_allclose(batched[i], alone, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("features,n_out", [("log_mel", 40), ("mfcc", 20)])
def test_module_shape_and_no_params(features, n_out):
  module = audio_frontend.AudioFrontEnd(features=features)
  waveform = jnp.zeros((3, 1000), jnp.float32).at[:, ::7].set(0.5)
  variables = module.init(jax.random.PRNGKey(0), waveform)
  out = module.apply(variables, waveform)
  assert not jax.tree_util.tree_leaves(variables)
  assert out.shape == (3, 1 + 1000 // 80, n_out)
  assert out.dtype == jnp.float32


def test_module_matches_functions(waveforms):
  module = audio_frontend.AudioFrontEnd(features="mfcc")
  out = jax.jit(module.apply)({}, jnp.asarray(waveforms))
  np.testing.assert_allclose(
      out, _jitted("mfcc")(waveforms), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1000,), (2, 1, 1000)])
def test_module_rejects_bad_rank(shape):
  with pytest.raises(ValueError, match=r"\[batch, samples\]"):
    audio_frontend.AudioFrontEnd().apply({}, jnp.zeros(shape))


def test_module_rejects_integer_waveform():
  with pytest.raises(ValueError, match="floating point"):
    audio_frontend.AudioFrontEnd().apply({}, jnp.zeros((2, 1000), jnp.int16))


def test_module_rejects_unknown_features():
  with pytest.raises(ValueError, match="'log_mel', 'mfcc'"):
    audio_frontend.AudioFrontEnd(features="spectrogram").apply(
        {}, jnp.zeros((2, 1000)))


def test_mfcc_rejects_too_many_coefficients():
  with pytest.raises(ValueError, match="n_mfcc=20"):
    audio_frontend.mfcc(jnp.zeros((1, 1000)), 8000, 256, 80, n_mels=10,
                        n_mfcc=20)


@pytest.mark.parametrize("n_samples,n_fft,hop_length", [
    (8256, 256, 128),  # hop divides n_fft: the slice-and-reshape path
    (8256, 256, 64),
    (8256, 256, 80),  # does not: the gather path
    (256, 256, 128),  # a single frame
])
def test_frame_is_librosa_frame(n_samples, n_fft, hop_length):
  signal = np.random.default_rng(0).normal(size=(2, n_samples)).astype(
      np.float32)
  frames = np.asarray(audio_frontend.frame(jnp.asarray(signal), n_fft,
                                           hop_length))
  expected = np.stack([librosa.util.frame(s, frame_length=n_fft,
                                          hop_length=hop_length).T
                       for s in signal])
  np.testing.assert_array_equal(frames, expected)


def test_frame_rejects_short_signal():
  with pytest.raises(ValueError, match="shorter than n_fft=256"):
    audio_frontend.frame(jnp.zeros((1, 200)), 256, 128)
