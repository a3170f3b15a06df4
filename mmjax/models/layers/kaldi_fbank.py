"""Batched JAX Kaldi filter-bank features and the AST input features.

`kaldi_fbank` reproduces Kaldi's `compute-fbank-feats` (Povey et al. 2011,
"The Kaldi Speech Recognition Toolkit"), as `torchaudio.compliance.kaldi.fbank`
with dither 0 and the default `snip_edges=True`. Per frame of
`frame_length_ms` taken every `frame_shift_ms` (no centering, no padding):

  1. remove the DC offset (subtract the frame mean);
  2. pre-emphasis: y[0] = (1 - c) x[0], y[n] = x[n] - c x[n - 1];
  3. multiply by the window (Kaldi's "povey" window by default);
  4. zero-pad to the next power of two and take the power spectrum;
  5. apply `num_mel_bins` triangular filters, evenly spaced on the Kaldi mel
     scale `1127 ln(1 + f / 700)` between `low_freq` and `high_freq` and
     triangular in mel (not in Hz);
  6. natural log, floored at float32 epsilon (2 ** -23 = 1.1920929e-07).

`ast_features` is the input of the Audio Spectrogram Transformer (Gong et al.
2021, "AST: Audio Spectrogram Transformer"): `kaldi_fbank` with a (symmetric)
Hann window -- AST uses `window_type="hanning"`, not Kaldi's default povey --
padded with zeros (after the log) or truncated to `max_length` frames, then
normalised as `(x - mean) / (2 * std)`. It matches the `input_values` of
Hugging Face's `ASTFeatureExtractor` (transformers 5.x), whose numpy path
(taken when torchaudio is absent) and torchaudio path both compute exactly
this; neither rescales the waveform to the int16 range Kaldi uses.

Units: sample rates and frequencies in Hz, frame lengths and shifts in ms
(converted to samples as `int(sample_rate * ms / 1000)`, as Kaldi), waveforms
in samples. Inputs are `[batch, samples]` and are cast to float32; outputs are
float32 `[batch, frames, num_mel_bins]`, time-major. Everything runs under
`jax.jit`; the window, the DFT operator and the mel matrix depend only on
static arguments and are built with numpy (float64) at trace time.

Errors: `ValueError` for a waveform that is not rank 2 (`[batch, samples]`)
or that is shorter than one frame (`frame_length_ms` of samples), and for
inconsistent static arguments (window type, frequency range, lengths).
"""

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.models.layers import audio_frontend

WINDOW_TYPES = ("povey", "hanning", "hamming", "rectangular", "blackman")

# Kaldi floors mel energies at std::numeric_limits<float>::epsilon() before
# the log (torchaudio: torch.finfo(torch.float).eps; Hugging Face's numpy
# path: mel_floor=1.192092955078125e-07). All three are 2 ** -23.
LOG_FLOOR = float(np.finfo(np.float32).eps)

# AudioSet statistics of AST's log-mel features (ASTFeatureExtractor).
AST_MEAN = -4.2677393
AST_STD = 4.5689974

# Accelerators default to reduced-precision matmuls (TF32 / bf16 passes).
_PRECISION = jax.lax.Precision.HIGHEST


def window(window_type: str, window_size: int,
           blackman_coeff: float = 0.42) -> np.ndarray:
  """Kaldi analysis window, as `torchaudio.compliance.kaldi`'s windows.

  All windows are symmetric (`a = 2 pi / (window_size - 1)`): "hanning" is
  `0.5 - 0.5 cos(a n)`, "povey" is hanning ** 0.85, "hamming" is
  `0.54 - 0.46 cos(a n)`, "blackman" is `b - 0.5 cos(a n) + (0.5 - b)
  cos(2 a n)` with b = blackman_coeff, and "rectangular" is all ones.

  Args:
    window_type: one of `WINDOW_TYPES`.
    window_size: window length in samples, >= 2.
    blackman_coeff: b of the Blackman window.

  Returns:
    `[window_size]` float32 window.

  Raises:
    ValueError: for an unknown window_type or window_size < 2.
  """
  if window_size < 2:
    raise ValueError(f"window_size must be >= 2 samples, got {window_size}")
  a = 2 * np.pi / (window_size - 1)
  cos = np.cos(a * np.arange(window_size))
  if window_type == "hanning":
    values = 0.5 - 0.5 * cos
  elif window_type == "povey":
    values = (0.5 - 0.5 * cos)**0.85
  elif window_type == "hamming":
    values = 0.54 - 0.46 * cos
  elif window_type == "blackman":
    values = (blackman_coeff - 0.5 * cos +
              (0.5 - blackman_coeff) * np.cos(2 * a * np.arange(window_size)))
  elif window_type == "rectangular":
    values = np.ones(window_size)
  else:
    raise ValueError(
        f"window_type must be one of {WINDOW_TYPES}, got {window_type!r}")
  return values.astype(np.float32)


def _kaldi_mel(hz: np.ndarray) -> np.ndarray:
  return 1127.0 * np.log(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_banks(num_mel_bins: int, padded_window_size: int, sample_rate: float,
              low_freq: float, high_freq: float) -> np.ndarray:
  """Kaldi's triangular mel filter bank (`MelBanks`, no VTLN warping).

  As `torchaudio.compliance.kaldi.get_mel_banks`, transposed, with a zero row
  appended for the Nyquist bin: the filters are evenly spaced and triangular
  on the Kaldi mel scale between low_freq and high_freq.

  Args:
    num_mel_bins: number of triangular filters, >= 3 (as Kaldi).
    padded_window_size: FFT size in samples (even).
    sample_rate: sampling rate in Hz.
    low_freq: lower edge of the lowest filter in Hz, >= 0.
    high_freq: upper edge of the highest filter in Hz; <= 0 means offset from
      the Nyquist frequency (0 = Nyquist), as Kaldi.

  Returns:
    `[padded_window_size // 2 + 1, num_mel_bins]` float32;
    `power_spectrum @ banks` gives the mel energies.

  Raises:
    ValueError: if num_mel_bins < 3 or the frequency range is empty or out of
      [0, Nyquist].
  """
  if num_mel_bins < 3:
    raise ValueError(f"num_mel_bins must be >= 3, got {num_mel_bins}")
  nyquist = 0.5 * sample_rate
  if high_freq <= 0.0:
    high_freq += nyquist
  if not 0.0 <= low_freq < high_freq <= nyquist:
    raise ValueError(
        f"need 0 <= low_freq < high_freq <= Nyquist ({nyquist} Hz), got "
        f"low_freq={low_freq} Hz, high_freq={high_freq} Hz")
  num_fft_bins = padded_window_size // 2
  fft_bin_width = sample_rate / padded_window_size
  mel_low, mel_high = _kaldi_mel(low_freq), _kaldi_mel(high_freq)
  mel_delta = (mel_high - mel_low) / (num_mel_bins + 1)
  left = mel_low + np.arange(num_mel_bins)[:, None] * mel_delta
  center = left + mel_delta
  right = center + mel_delta
  mel = _kaldi_mel(fft_bin_width * np.arange(num_fft_bins))[None, :]
  up = (mel - left) / (center - left)
  down = (right - mel) / (right - center)
  banks = np.maximum(0.0, np.minimum(up, down))
  banks = np.pad(banks, ((0, 0), (0, 1)))  # Nyquist bin: zero weight.
  return banks.T.astype(np.float32)


def _frame_sizes(sample_rate: float, frame_length_ms: float,
                 frame_shift_ms: float) -> tuple[int, int, int]:
  """(window_size, window_shift, padded_window_size) in samples, as Kaldi."""
  window_size = int(sample_rate * frame_length_ms * 0.001)
  window_shift = int(sample_rate * frame_shift_ms * 0.001)
  if window_size < 2 or window_shift < 1:
    raise ValueError(
        f"frame_length_ms={frame_length_ms} and frame_shift_ms="
        f"{frame_shift_ms} at {sample_rate} Hz give {window_size} and "
        f"{window_shift} samples; need >= 2 and >= 1")
  padded_window_size = 1 << (window_size - 1).bit_length()
  return window_size, window_shift, padded_window_size


def dft_operator(analysis_window: np.ndarray, n_fft: int, preemphasis: float,
                 remove_dc_offset: bool) -> np.ndarray:
  """Frame -> spectrum as one real matrix, computed in float64.

  Folds DC removal, pre-emphasis, windowing and the zero-padded DFT into
  `[window_size, 2 * (n_fft // 2 + 1)]`: `frames @ operator` gives the real
  parts of the one-sided spectrum, then the imaginary parts (negated).

  Args:
    analysis_window: `[window_size]` window.
    n_fft: DFT size in samples, >= window_size.
    preemphasis: pre-emphasis coefficient c.
    remove_dc_offset: subtract the frame mean first.

  Returns:
    `[window_size, 2 * (n_fft // 2 + 1)]` float64.
  """
  size = analysis_window.shape[0]
  # Each frame is a column x here: spectrum = dft @ diag(w) @ pre @ dc @ x.
  dc = np.eye(size)
  if remove_dc_offset:
    dc -= 1.0 / size
  pre = np.eye(size) - preemphasis * np.eye(size, k=-1)
  pre[0, 0] = 1.0 - preemphasis
  phase = 2 * np.pi / n_fft * np.outer(np.arange(n_fft // 2 + 1),
                                       np.arange(size))
  dft = np.concatenate([np.cos(phase), np.sin(phase)], axis=0)
  return (dft @ (analysis_window.astype(np.float64)[:, None] * pre @ dc)).T


def _split(values: np.ndarray, bits: int, axis: int) -> np.ndarray:
  """Rounds to `bits` fixed-point bits relative to the max along `axis`."""
  peak = np.max(np.abs(values), axis=axis, keepdims=True)
  scale = np.ldexp(1.0, np.frexp(peak)[1] - bits)
  return np.round(values / scale) * scale


def _split_matmul(x: jax.Array, operator: np.ndarray) -> jax.Array:
  """`x @ operator` in float32 with ~2 ** -7 of a plain matmul's error.

  A float32 FFT or matmul errs by ~1e-7 of the frame norm in every bin, so a
  bin 110 dB below the frame's peak (e.g. far from a pure tone) is off by
  several % in energy, ~0.03 in the log. Here each row of x and each column
  of the operator is cut into a head with few fixed-point bits and a float32
  tail. head @ head is an integer matmul (times a power of two per row and
  column), exact in float32 whatever the summation order: its factors have
  <= 8 bits, its products <= 15, and all its partial sums stay below 2 ** 24
  units. The other terms are ~2 ** -7 as large, and so are their rounding
  errors. Costs 3 matmuls of the operator's size instead of 1.
  """
  size = operator.shape[0]
  bits = int(np.floor(24 - np.log2(size)))  # size * 2 ** bits <= 2 ** 24.
  x_bits, op_bits = (bits + 1) // 2, bits // 2
  op_head = _split(operator, op_bits, axis=0)
  peak = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
  scale = jnp.ldexp(jnp.float32(1.0), jnp.frexp(peak)[1] - x_bits)
  x_head = jnp.round(x / scale) * scale
  head = jnp.matmul(x_head, op_head.astype(np.float32), precision=_PRECISION)
  rest = jnp.matmul(
      jnp.concatenate([x_head, x - x_head], axis=-1),
      np.concatenate([operator - op_head, operator]).astype(np.float32),
      precision=_PRECISION)
  return head + rest


def _check_waveform(waveform: jax.Array, window_size: int) -> None:
  if waveform.ndim != 2:
    raise ValueError(
        "waveform must have shape [batch, samples], got shape "
        f"{tuple(waveform.shape)} (rank {waveform.ndim})")
  if waveform.shape[1] < window_size:
    raise ValueError(
        f"waveform of {waveform.shape[1]} samples is shorter than one frame "
        f"({window_size} samples); need at least {window_size}")


def kaldi_fbank(waveform: jax.Array,
                *,
                sample_rate: float = 16000,
                num_mel_bins: int = 128,
                frame_length_ms: float = 25.0,
                frame_shift_ms: float = 10.0,
                preemphasis: float = 0.97,
                low_freq: float = 20.0,
                high_freq: float = 0.0,
                window_type: str = "povey",
                remove_dc_offset: bool = True) -> jax.Array:
  """Log mel filter-bank energies, as Kaldi's `compute-fbank-feats`.

  Equals `torchaudio.compliance.kaldi.fbank(w[None], sample_frequency=
  sample_rate, num_mel_bins=..., frame_length=..., frame_shift=...,
  preemph_coefficient=..., low_freq=..., high_freq=..., window_type=...,
  remove_dc_offset=..., dither=0.0)` for each row w, computed as in float64
  (use_energy=False, use_power=True, use_log_fbank=True, snip_edges=True,
  round_to_power_of_two=True, no VTLN). Kaldi is usually fed int16-scaled
  audio; this function does not rescale its input.

  The per-frame steps up to the DFT are linear, so they are folded into one
  `[window_size, n_fft + 2]` matrix applied with an error-compensated
  float32 matmul (see `_split_matmul`): log energies of bins 110 dB below
  the frame peak stay within ~3e-3 of a float64 computation, where a float32
  FFT is off by ~3e-2 (the difference elsewhere is ~1e-5). This costs 3
  matmuls of that size per frame, instead of an FFT.

  Args:
    waveform: `[batch, samples]` waveform, cast to float32.
    sample_rate: sampling rate in Hz.
    num_mel_bins: number of mel filters, >= 3.
    frame_length_ms: frame (window) length in ms.
    frame_shift_ms: hop between frames in ms.
    preemphasis: pre-emphasis coefficient c (0 disables it).
    low_freq: lower edge of the mel range in Hz.
    high_freq: upper edge of the mel range in Hz; <= 0 is an offset from
      the Nyquist frequency (0 = Nyquist).
    window_type: one of `WINDOW_TYPES`.
    remove_dc_offset: subtract each frame's mean before pre-emphasis.

  Returns:
    `[batch, frames, num_mel_bins]` float32 natural-log energies, frames =
    1 + (samples - window_size) // window_shift, where window_size =
    int(sample_rate * frame_length_ms / 1000) and window_shift =
    int(sample_rate * frame_shift_ms / 1000) samples; the DFT size n_fft is
    window_size rounded up to a power of two.

  Raises:
    ValueError: if waveform is not rank 2 or has fewer samples than one
      frame, or for invalid static arguments (see `window`, `mel_banks`).
  """
  window_size, window_shift, n_fft = _frame_sizes(sample_rate,
                                                  frame_length_ms,
                                                  frame_shift_ms)
  _check_waveform(waveform, window_size)
  operator = dft_operator(window(window_type, window_size), n_fft,
                          preemphasis, remove_dc_offset)
  banks = mel_banks(num_mel_bins, n_fft, sample_rate, low_freq, high_freq)
  frames = audio_frontend.frame(
      waveform.astype(jnp.float32), window_size, window_shift)
  spectrum = _split_matmul(frames, operator)
  n_bins = n_fft // 2 + 1
  power = jnp.square(spectrum[..., :n_bins]) + jnp.square(
      spectrum[..., n_bins:])
  mel = jnp.matmul(power, banks, precision=_PRECISION)
  return jnp.log(jnp.maximum(mel, LOG_FLOOR))


def ast_features(waveform: jax.Array,
                 *,
                 max_length: int = 1024,
                 mean: float = AST_MEAN,
                 std: float = AST_STD,
                 normalize: bool = True,
                 sample_rate: float = 16000,
                 num_mel_bins: int = 128) -> jax.Array:
  """Audio Spectrogram Transformer input features (`input_values`).

  Matches `transformers.ASTFeatureExtractor(num_mel_bins=num_mel_bins,
  max_length=max_length, mean=mean, std=std, do_normalize=normalize)(
  list(waveform), sampling_rate=sample_rate)["input_values"]`: `kaldi_fbank`
  with 25 ms symmetric Hann ("hanning") windows every 10 ms, n_fft 512 at
  16 kHz, pre-emphasis 0.97, DC removal, mel range 20 Hz .. Nyquist; zero
  rows appended (in the log domain, before normalisation) or trailing frames
  dropped to get exactly max_length frames; then `(x - mean) / (2 * std)`.
  (Hugging Face's numpy path hard-codes 400 / 160 / 512 samples, which equal
  these only at 16 kHz, the rate of every AST checkpoint.)

  Args:
    waveform: `[batch, samples]` waveform in [-1, 1] (not int16-scaled),
      cast to float32.
    max_length: number of output frames; 1024 frames are 10.24 s at 16 kHz.
    mean: normalisation mean (AudioSet statistics by default).
    std: normalisation standard deviation; the features are divided by
      2 * std.
    normalize: whether to normalise (ASTFeatureExtractor's do_normalize).
    sample_rate: sampling rate in Hz.
    num_mel_bins: number of mel filters.

  Returns:
    `[batch, max_length, num_mel_bins]` float32.

  Raises:
    ValueError: if waveform is not rank 2 or is shorter than one 25 ms
      frame (400 samples at 16 kHz), or if max_length < 1.
  """
  if max_length < 1:
    raise ValueError(f"max_length must be >= 1, got {max_length}")
  window_size, window_shift, _ = _frame_sizes(sample_rate, 25.0, 10.0)
  _check_waveform(waveform, window_size)
  # Frames past max_length would be dropped: do not compute them.
  waveform = waveform[:, :(max_length - 1) * window_shift + window_size]
  fbank = kaldi_fbank(waveform, sample_rate=sample_rate,
                      num_mel_bins=num_mel_bins, frame_length_ms=25.0,
                      frame_shift_ms=10.0, preemphasis=0.97, low_freq=20.0,
                      high_freq=0.0, window_type="hanning",
                      remove_dc_offset=True)
  fbank = jnp.pad(fbank, ((0, 0), (0, max_length - fbank.shape[1]), (0, 0)))
  if normalize:
    fbank = (fbank - mean) / (2.0 * std)
  return fbank
