"""Whisper's log-mel spectrogram in JAX, batched and jit-able.

The input features of Whisper (Radford et al. 2022, "Robust Speech
Recognition via Large-Scale Weak Supervision"), as
`transformers.WhisperFeatureExtractor` computes them with numpy
(`_np_extract_fbank_features`, transformers 5.x) and openai-whisper's
`log_mel_spectrogram`: the waveform at 16 kHz, zero-padded or truncated to
`n_samples`, a centered STFT with reflect padding (25 ms periodic Hann
window, n_fft 400, 10 ms hop 160), power spectrum, Slaney mel filter bank
(0 to 8 kHz), the last frame dropped, log10 with a floor of 1e-10, each
example clamped to at least its maximum - 8 (80 dB of dynamic range), then
`(x + 4) / 4`.

Layout differs from transformers: features come out time-major,
`[batch, frames, n_mels]`, where the feature extractor returns
`[batch, n_mels, frames]`.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from mmjax.models.layers import audio_frontend

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
# The 30 s window of the published models (chunk_length * sampling_rate),
# 3000 frames, 1500 encoder positions.
CHUNK_SAMPLES = 30 * SAMPLE_RATE
N_MELS = (80, 128)  # the published models: 80 bins, 128 from large-v3 on


def pad_or_trim(waveform: jax.Array, n_samples: int) -> jax.Array:
  """Zero-pads at the end, or truncates, `[batch, samples]` to `n_samples`,
  as `WhisperFeatureExtractor` (padding="max_length", truncation=True) and
  openai-whisper's `pad_or_trim`.

  Raises:
    ValueError: if `n_samples` < 1.
  """
  if n_samples < 1:
    raise ValueError(f"n_samples must be >= 1, got {n_samples}")
  length = waveform.shape[1]
  if length >= n_samples:
    return waveform[:, :n_samples]
  return jnp.pad(waveform, ((0, 0), (0, n_samples - length)))


def num_frames(n_samples: int) -> int:
  """Feature frames of `n_samples` samples: `n_samples // HOP_LENGTH`."""
  return n_samples // HOP_LENGTH


def whisper_log_mel(waveform: jax.Array,
                    n_mels: int = 80,
                    n_samples: Optional[int] = CHUNK_SAMPLES) -> jax.Array:
  """Whisper's normalised log-mel features of 16 kHz waveforms.

  Equals `WhisperFeatureExtractor(feature_size=n_mels)(waveform,
  max_length=n_samples, sampling_rate=16000).input_features`, transposed to
  `[batch, frames, n_mels]`, up to float32 rounding (the extractor computes
  in float64): on 1-2 s of noise and chirps, and on pure tones with
  silence, the largest difference measured is 7e-6 with 80 bins and 1.4e-5
  with 128 (tests/models/encoders/test_whisper.py).

  Args:
    waveform: `[batch, samples]` float waveform in [-1, 1] at 16 kHz.
    n_mels: mel bins (80, or 128 for Whisper large-v3).
    n_samples: zero-pad or truncate every waveform to this many samples
      first (the extractor's default is 480000, 30 s); None: use the
      waveform as given.

  Returns:
    `[batch, n_samples // 160, n_mels]` float32 (samples instead of
    n_samples when None), values in about [-1, 2].

  Raises:
    ValueError: for a waveform that is not rank 2 or not floating point,
      one that gives no frame (fewer than 160 samples after padding or
      truncation), or n_mels < 1.
  """
  audio_frontend._check_waveform(waveform)  # pylint: disable=protected-access
  if n_mels < 1:
    raise ValueError(f"n_mels must be >= 1, got {n_mels}")
  waveform = waveform.astype(jnp.float32)
  if n_samples is not None:
    waveform = pad_or_trim(waveform, n_samples)
  frames = num_frames(waveform.shape[1])
  if frames < 1:
    raise ValueError(
        f"a waveform of {waveform.shape[1]} samples gives no Whisper feature "
        f"frame; at least {HOP_LENGTH} samples (10 ms at 16 kHz) are needed")
  # Reflect padding (torch.stft's and the extractor's), unlike librosa's
  # zeros in audio_frontend.stft.
  padded = jnp.pad(waveform, ((0, 0), (N_FFT // 2, N_FFT // 2)),
                   mode="reflect")
  spectrum = audio_frontend.stft(padded, N_FFT, HOP_LENGTH, center=False)
  spectrum = spectrum[:, :frames]  # the STFT's last frame is dropped
  power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
  filterbank = audio_frontend.mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, 0.0,
                                             SAMPLE_RATE / 2)
  mel = jnp.matmul(power, filterbank,
                   precision=audio_frontend._PRECISION)  # pylint: disable=protected-access
  log_spec = jnp.log10(jnp.maximum(mel, 1e-10))
  per_example_max = jnp.max(log_spec, axis=(1, 2), keepdims=True)
  log_spec = jnp.maximum(log_spec, per_example_max - 8.0)
  return (log_spec + 4.0) / 4.0
