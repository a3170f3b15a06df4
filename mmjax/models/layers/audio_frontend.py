"""Batched JAX audio front end: STFT, mel spectrogram, log-mel and MFCC.

Every function reproduces its librosa (0.10/0.11) counterpart up to float32
rounding, but works on a batch `[batch, samples]` and runs under `jax.jit`.
Constants (window, mel filterbank, DCT matrix) depend only on static
parameters, so they are built with numpy at trace time.

Layout differs from librosa: features come out time-major,
`[batch, frames, bins]`, where librosa returns `[bins, frames]`.
"""

from typing import Optional
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmjax.models.layers import fft

FEATURES = ("log_mel", "mfcc")

# Accelerators default to reduced-precision matmuls (TF32 / bf16 passes),
# which would break agreement with librosa by far more than float32 rounding.
_PRECISION = jax.lax.Precision.HIGHEST


def hann_window(win_length: int) -> np.ndarray:
  """Periodic Hann window, as `scipy.signal.get_window('hann', n)`.

  The formula and evaluation order follow scipy's `general_cosine` so the
  result is bit-identical to the window librosa uses.

  Args:
    win_length: window length in samples, >= 1.

  Returns:
    `[win_length]` float32 window.

  Raises:
    ValueError: if `win_length` < 1.
  """
  if win_length < 1:
    raise ValueError(f"win_length must be >= 1, got {win_length}")
  if win_length == 1:
    return np.ones(1, np.float32)
  fac = np.linspace(-np.pi, np.pi, win_length + 1)
  window = np.zeros(win_length + 1)
  for k, coef in enumerate((0.5, 0.5)):
    window += coef * np.cos(k * fac)
  return window[:-1].astype(np.float32)


def _fft_window(n_fft: int, win_length: Optional[int]) -> np.ndarray:
  """Hann window zero-padded (centered) to n_fft, as librosa.util.pad_center."""
  win_length = n_fft if win_length is None else win_length
  if not 1 <= win_length <= n_fft:
    raise ValueError(
        f"win_length must be in [1, n_fft={n_fft}], got {win_length}")
  left = (n_fft - win_length) // 2
  return np.pad(hann_window(win_length), (left, n_fft - win_length - left))


def _check_waveform(waveform: jax.Array) -> None:
  if waveform.ndim != 2:
    raise ValueError(
        "waveform must have shape [batch, samples], got shape "
        f"{tuple(waveform.shape)} (rank {waveform.ndim})")
  if not jnp.issubdtype(waveform.dtype, jnp.floating):
    raise ValueError(
        f"waveform must be floating point in [-1, 1], got {waveform.dtype}")


def _frame_indices(n_samples: int, n_fft: int, hop_length: int) -> np.ndarray:
  """`[frames, n_fft]` sample indices of each frame, as librosa.util.frame."""
  if n_samples < n_fft:
    raise ValueError(
        f"signal of {n_samples} samples (after padding) is shorter than "
        f"n_fft={n_fft}")
  n_frames = 1 + (n_samples - n_fft) // hop_length
  starts = hop_length * np.arange(n_frames)[:, None]
  return starts + np.arange(n_fft)[None, :]


def stft(waveform: jax.Array,
         n_fft: int,
         hop_length: int,
         win_length: Optional[int] = None,
         center: bool = True) -> jax.Array:
  """Short-time Fourier transform with a periodic Hann window.

  Matches `librosa.stft(y, n_fft=n_fft, hop_length=hop_length,
  win_length=win_length, window='hann', center=center, pad_mode='constant')`
  (librosa >= 0.10), transposed to time-major.

  Args:
    waveform: `[batch, samples]` float waveform.
    n_fft: FFT size in samples.
    hop_length: hop between frames in samples, >= 1.
    win_length: Hann window length in samples, <= n_fft (default n_fft); a
      shorter window is zero-padded to n_fft, centered.
    center: if True, pad n_fft // 2 zeros on both sides so frame t is
      centered on sample t * hop_length.

  Returns:
    `[batch, frames, n_fft // 2 + 1]` complex64, with
    frames = 1 + (samples + 2 * (n_fft // 2) - n_fft) // hop_length if center
    (= 1 + samples // hop_length for even n_fft), else
    1 + (samples - n_fft) // hop_length.

  Raises:
    ValueError: for a waveform that is not rank 2 or not floating point, a
      non-positive hop_length, an invalid win_length, or a signal shorter
      than n_fft (after centering pad).
  """
  _check_waveform(waveform)
  if hop_length < 1:
    raise ValueError(f"hop_length must be >= 1, got {hop_length}")
  window = _fft_window(n_fft, win_length)
  waveform = waveform.astype(jnp.float32)
  if center:
    waveform = jnp.pad(waveform, ((0, 0), (n_fft // 2, n_fft // 2)))
  return fft.rfft(frame(waveform, n_fft, hop_length) * window)


def frame(waveform: jax.Array, n_fft: int, hop_length: int) -> jax.Array:
  """Overlapping frames `[batch, frames, n_fft]` of `[batch, samples]`, as
  `librosa.util.frame` (frames = 1 + (samples - n_fft) // hop_length).

  When hop_length divides n_fft the frames are `n_fft / hop_length` shifted
  views of the signal cut into hop-length chunks, concatenated: slices and a
  reshape, which XLA compiles to copies, instead of a gather.

  Raises:
    ValueError: if the signal is shorter than n_fft.
  """
  n_samples = waveform.shape[1]
  indices = _frame_indices(n_samples, n_fft, hop_length)
  if n_fft % hop_length:
    return waveform[:, indices]
  n_frames, per_frame = indices.shape[0], n_fft // hop_length
  n_chunks = n_frames + per_frame - 1
  chunks = waveform[:, :n_chunks * hop_length].reshape(
      waveform.shape[0], n_chunks, hop_length)
  return jnp.concatenate(
      [chunks[:, k:k + n_frames] for k in range(per_frame)], axis=-1)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
  """Slaney mel scale (linear below 1 kHz, log above), as librosa.hz_to_mel."""
  hz = np.asarray(hz, np.float64)
  f_sp = 200.0 / 3
  min_log_mel = 1000.0 / f_sp
  logstep = np.log(6.4) / 27.0
  mels = hz / f_sp
  log_region = hz >= 1000.0
  mels[log_region] = (
      min_log_mel + np.log(hz[log_region] / 1000.0) / logstep)
  return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
  """Inverse of `_hz_to_mel`, as librosa.mel_to_hz(htk=False)."""
  mels = np.asarray(mels, np.float64)
  f_sp = 200.0 / 3
  min_log_mel = 1000.0 / f_sp
  logstep = np.log(6.4) / 27.0
  hz = f_sp * mels
  log_region = mels >= min_log_mel
  hz[log_region] = 1000.0 * np.exp(logstep * (mels[log_region] - min_log_mel))
  return hz


def mel_filterbank(sample_rate: float,
                   n_fft: int,
                   n_mels: int,
                   fmin: float = 0.0,
                   fmax: Optional[float] = None) -> np.ndarray:
  """Triangular mel filterbank, Slaney mel scale and Slaney area norm.

  Same values as `librosa.filters.mel(sr=sample_rate, n_fft=n_fft,
  n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm='slaney').T`,
  including librosa's float64 -> float32 rounding order. Like librosa, warns
  when some filter is empty (n_mels too large for n_fft / frequency range).

  Args:
    sample_rate: sampling rate in Hz.
    n_fft: FFT size in samples.
    n_mels: number of mel bands.
    fmin: lowest band edge in Hz.
    fmax: highest band edge in Hz (default sample_rate / 2).

  Returns:
    `[n_fft // 2 + 1, n_mels]` float32; `power_spectrum @ filterbank` gives
    the mel spectrogram.
  """
  fmax = sample_rate / 2 if fmax is None else fmax
  fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
  mel_edges = _mel_to_hz(np.linspace(
      _hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0],
      n_mels + 2))
  widths = np.diff(mel_edges)
  ramps = np.subtract.outer(mel_edges, fft_freqs)
  lower = -ramps[:-2] / widths[:-1, None]
  upper = ramps[2:] / widths[1:, None]
  # librosa stores the triangles in float32 before the float64 area norm.
  weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
  area_norm = 2.0 / (mel_edges[2:] - mel_edges[:-2])
  weights = (weights * area_norm[:, None]).astype(np.float32)
  if not np.all((mel_edges[:-2] == 0) | (weights.max(axis=1) > 0)):
    warnings.warn(
        f"Empty mel filters: n_mels={n_mels} is too large for n_fft={n_fft}, "
        f"sample_rate={sample_rate} Hz, fmin={fmin} Hz, fmax={fmax} Hz.",
        stacklevel=2)
  return weights.T


def mel_spectrogram(waveform: jax.Array,
                    sample_rate: float,
                    n_fft: int,
                    hop_length: int,
                    n_mels: int,
                    fmin: float = 0.0,
                    fmax: Optional[float] = None,
                    power: float = 2.0) -> jax.Array:
  """Mel spectrogram, as `librosa.feature.melspectrogram`.

  Centered STFT with a periodic Hann window of length n_fft and zero padding,
  magnitude raised to `power`, then the Slaney mel filterbank.

  Args:
    waveform: `[batch, samples]` float waveform.
    sample_rate: sampling rate in Hz.
    n_fft: FFT size in samples.
    hop_length: hop between frames in samples.
    n_mels: number of mel bands.
    fmin: lowest band edge in Hz.
    fmax: highest band edge in Hz (default sample_rate / 2).
    power: exponent of the magnitude; 2.0 for power, 1.0 for energy.

  Returns:
    `[batch, frames, n_mels]` float32, frames = 1 + samples // hop_length
    for even n_fft.

  Raises:
    ValueError: as `stft`.
  """
  spectrum = stft(waveform, n_fft, hop_length)
  if power == 2.0:
    # Same value as |z|**2 but no sqrt, and a finite gradient at z = 0.
    spectrum = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
  else:
    spectrum = jnp.abs(spectrum) ** power
  filterbank = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
  return jnp.matmul(spectrum, filterbank, precision=_PRECISION)


def power_to_db(power: jax.Array,
                ref: float = 1.0,
                amin: float = 1e-10,
                top_db: Optional[float] = 80.0) -> jax.Array:
  """Power to decibels, `10 log10(max(amin, power) / max(amin, |ref|))`.

  As `librosa.power_to_db` applied to each example separately: the top_db
  floor is relative to the maximum of each example (over all non-batch axes).

  Args:
    power: `[batch, ...]` non-negative float power, e.g. a mel spectrogram.
    ref: reference power (a scalar) mapped to 0 dB.
    amin: minimum power, > 0, to avoid log(0).
    top_db: if not None, clip each example to at least its max - top_db dB.

  Returns:
    Same shape and dtype as `power`, in dB.

  Raises:
    ValueError: if `power` has rank < 2, amin <= 0 or top_db < 0.
  """
  if power.ndim < 2:
    raise ValueError(
        f"power must have shape [batch, ...] with rank >= 2, got shape "
        f"{tuple(power.shape)}")
  if amin <= 0:
    raise ValueError(f"amin must be > 0, got {amin}")
  log_spec = 10.0 * jnp.log10(jnp.maximum(amin, power))
  log_spec -= 10.0 * float(np.log10(max(amin, abs(ref))))
  if top_db is None:
    return log_spec
  if top_db < 0:
    raise ValueError(f"top_db must be >= 0, got {top_db}")
  per_example_max = jnp.max(
      log_spec, axis=tuple(range(1, log_spec.ndim)), keepdims=True)
  return jnp.maximum(log_spec, per_example_max - top_db)


def log_mel(waveform: jax.Array,
            sample_rate: float,
            n_fft: int,
            hop_length: int,
            n_mels: int,
            fmin: float = 0.0,
            fmax: Optional[float] = None,
            top_db: Optional[float] = 80.0) -> jax.Array:
  """Log-mel spectrogram in dB, `power_to_db(mel_spectrogram(...))`.

  As `librosa.power_to_db(librosa.feature.melspectrogram(...),
  top_db=top_db)` per recording, with ref=1.0 and amin=1e-10.

  Args:
    waveform: `[batch, samples]` float waveform.
    sample_rate: sampling rate in Hz.
    n_fft: FFT size in samples.
    hop_length: hop between frames in samples.
    n_mels: number of mel bands.
    fmin: lowest band edge in Hz.
    fmax: highest band edge in Hz (default sample_rate / 2).
    top_db: dynamic range floor in dB below each example's max, or None.

  Returns:
    `[batch, frames, n_mels]` float32 dB.

  Raises:
    ValueError: as `stft` and `power_to_db`.
  """
  mel = mel_spectrogram(waveform, sample_rate, n_fft, hop_length, n_mels,
                        fmin, fmax)
  return power_to_db(mel, top_db=top_db)


def dct_matrix(n_input: int, n_output: int) -> np.ndarray:
  """Orthonormal DCT-II matrix, as `scipy.fft.dct(x, type=2, norm='ortho')`.

  `x @ dct_matrix(n, k)` gives the first k DCT-II coefficients along the last
  axis of x.

  Args:
    n_input: length of the transformed axis.
    n_output: number of coefficients kept, <= n_input.

  Returns:
    `[n_input, n_output]` float32.

  Raises:
    ValueError: if not 1 <= n_output <= n_input.
  """
  if not 1 <= n_output <= n_input:
    raise ValueError(
        f"need 1 <= n_output <= n_input, got n_output={n_output}, "
        f"n_input={n_input}")
  n = np.arange(n_input)[:, None]
  k = np.arange(n_output)[None, :]
  basis = np.sqrt(2.0 / n_input) * np.cos(np.pi * k * (2 * n + 1) /
                                          (2 * n_input))
  basis[:, 0] /= np.sqrt(2.0)
  return basis.astype(np.float32)


def mfcc(waveform: jax.Array,
         sample_rate: float,
         n_fft: int,
         hop_length: int,
         n_mels: int,
         n_mfcc: int = 20,
         fmin: float = 0.0,
         fmax: Optional[float] = None,
         top_db: Optional[float] = 80.0) -> jax.Array:
  """Mel-frequency cepstral coefficients, as `librosa.feature.mfcc`.

  DCT-II (norm='ortho') over the mel axis of `log_mel(...)`, first n_mfcc
  coefficients; no liftering. Equals `librosa.feature.mfcc(y=..., sr=...,
  n_mfcc=..., n_fft=..., hop_length=..., n_mels=..., fmin=..., fmax=...)`
  per recording (librosa uses top_db=80).

  Args:
    waveform: `[batch, samples]` float waveform.
    sample_rate: sampling rate in Hz.
    n_fft: FFT size in samples.
    hop_length: hop between frames in samples.
    n_mels: number of mel bands.
    n_mfcc: number of coefficients, <= n_mels.
    fmin: lowest band edge in Hz.
    fmax: highest band edge in Hz (default sample_rate / 2).
    top_db: dynamic range floor of the log-mel in dB, or None.

  Returns:
    `[batch, frames, n_mfcc]` float32.

  Raises:
    ValueError: as `log_mel`, or if not 1 <= n_mfcc <= n_mels.
  """
  if not 1 <= n_mfcc <= n_mels:
    raise ValueError(f"n_mfcc={n_mfcc} must be in [1, n_mels={n_mels}]")
  basis = dct_matrix(n_mels, n_mfcc)
  log_spec = log_mel(waveform, sample_rate, n_fft, hop_length, n_mels, fmin,
                     fmax, top_db)
  return jnp.matmul(log_spec, basis, precision=_PRECISION)


class AudioFrontEnd(nn.Module):
  """Parameter-free log-mel or MFCC features from raw waveforms.

  Attributes:
    features: 'log_mel' (n_mels features) or 'mfcc' (n_mfcc features).
    sample_rate: sampling rate in Hz.
    n_fft: FFT size in samples.
    hop_length: hop between frames in samples.
    n_mels: number of mel bands.
    fmin: lowest mel band edge in Hz.
    fmax: highest mel band edge in Hz (None: sample_rate / 2).
    n_mfcc: number of cepstral coefficients (features='mfcc' only).
    top_db: dynamic range floor in dB below each example's max, or None.
  """
  features: str = "log_mel"
  sample_rate: int = 8000
  n_fft: int = 256
  hop_length: int = 80
  n_mels: int = 40
  fmin: float = 0.0
  fmax: Optional[float] = None
  n_mfcc: int = 20
  top_db: Optional[float] = 80.0

  @nn.compact
  def __call__(self, waveform: jax.Array) -> jax.Array:
    """Computes features.

    Args:
      waveform: `[batch, samples]` float32 in [-1, 1].

    Returns:
      `[batch, frames, n_features]` float32, frames = 1 + samples //
      hop_length (even n_fft), n_features = n_mels or n_mfcc.

    Raises:
      ValueError: for an unknown `features`, or a waveform that is not rank
        2 / not floating point.
    """
    if self.features not in FEATURES:
      raise ValueError(
          f"features must be one of {FEATURES}, got {self.features!r}")
    _check_waveform(waveform)
    args = (waveform, self.sample_rate, self.n_fft, self.hop_length,
            self.n_mels)
    if self.features == "mfcc":
      return mfcc(*args, n_mfcc=self.n_mfcc, fmin=self.fmin, fmax=self.fmax,
                  top_db=self.top_db)
    return log_mel(*args, fmin=self.fmin, fmax=self.fmax, top_db=self.top_db)
