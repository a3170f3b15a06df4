"""Audio corruptions at a graded level, on device in JAX.

Audio analogues of ImageNet-C (Hendrycks & Dietterich 2019): additive noise
at a signal-to-noise ratio, reverberation, clipping, telephone band-limiting
and time masking (SpecAugment-style, Park et al. 2019, on the waveform).
Every function takes float waveforms `[batch, samples]` and returns the same
shape and dtype; it runs under `jax.jit` with the level a Python float or a
traced float32 scalar (no shape or control flow depends on it). A Python
level out of range raises ValueError; a traced one is clipped to the range
(not checked). Random draws come from the `rng` key only. Frequencies are in
Hz and times in seconds at `sample_rate` (default 8000 Hz, FSDD's).
"""

import jax
import jax.numpy as jnp

from mmjax.analysis.corruption_checks import check_level, check_rank

FSDD_SAMPLE_RATE = 8000
_LAYOUT = "[batch, samples]"


def _scale_to_snr(signal: jax.Array, noise: jax.Array,
                  snr_db: float) -> jax.Array:
  """`signal` plus `noise` rescaled per example to the exact SNR in dB.

  Powers are mean squares over the samples of the given arrays, so the SNR of
  the output holds exactly (up to rounding), not only in expectation. A silent
  example or an all-zero noise row gets no noise (no NaN); snr_db = +inf
  returns `signal`.
  """
  # Powers in at least float32: squares of bfloat16 audio lose the SNR.
  dtype = jnp.promote_types(signal.dtype, jnp.float32)
  p_signal = jnp.mean(jnp.square(signal.astype(dtype)), axis=-1,
                      keepdims=True)
  p_noise = jnp.mean(jnp.square(noise.astype(dtype)), axis=-1, keepdims=True)
  ratio = jnp.power(10.0, jnp.asarray(snr_db, dtype) / 10.0)
  scale = jnp.sqrt(p_signal / (ratio * jnp.where(p_noise > 0, p_noise, 1.0)))
  scale = jnp.where(p_noise > 0, scale, 0.0)
  return signal + (scale * noise).astype(signal.dtype)


def add_white_noise(rng: jax.Array, waveform: jax.Array,
                    snr_db: float) -> jax.Array:
  """Adds Gaussian white noise at a given signal-to-noise ratio per example.

  The noise of each example is drawn from N(0, 1) and scaled so that
  10 log10(P_signal / P_noise) = snr_db exactly, P being the mean square over
  the samples of the example and of its drawn noise. An all-zero example stays
  zero; snr_db = +inf is the identity.

  Args:
    rng: PRNG key.
    waveform: float `[batch, samples]`.
    snr_db: target SNR in dB (e.g. 20 mild, -5 severe).

  Returns:
    The noisy waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2.
  """
  check_rank(waveform, _LAYOUT, "add_white_noise")
  noise = jax.random.normal(rng, waveform.shape, waveform.dtype)
  return _scale_to_snr(waveform, noise, snr_db)


def add_babble_noise(rng: jax.Array, waveform: jax.Array, snr_db: float,
                     num_speakers: int = 3) -> jax.Array:
  """Adds babble made of other recordings of the batch at a given SNR.

  Babble is the sum of min(num_speakers, batch - 1) distinct *other* examples
  of the batch (e.g. other FSDD clips), chosen at random and independently for
  each example and never the example itself; it is scaled per example so that
  10 log10(P_signal / P_babble) = snr_db exactly (P: mean square over the
  samples). So the noise is real speech with the same recording conditions as
  the signal, a harder and more realistic corruption than white noise. An
  all-zero example, or one whose talkers are all silent, gets no noise;
  snr_db = +inf is the identity.

  Args:
    rng: PRNG key.
    waveform: float `[batch, samples]`, batch >= 2: with batch 1 there are no
      other recordings to draw the talkers from.
    snr_db: target SNR in dB.
    num_speakers: talkers per example, >= 1 (static); capped at batch - 1.

  Returns:
    The noisy waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2, batch < 2 or num_speakers < 1.
  """
  check_rank(waveform, _LAYOUT, "add_babble_noise")
  batch = waveform.shape[0]
  if batch < 2:
    raise ValueError(f"add_babble_noise draws the talkers from the other "
                     f"examples of the batch and needs batch >= 2, got "
                     f"{batch}")
  if num_speakers < 1:
    raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
  # Each row ranks the other examples in a random order; self ranks last.
  keys = jax.random.uniform(rng, (batch, batch))
  keys = jnp.where(jnp.eye(batch, dtype=bool), jnp.inf, keys)
  talkers = jnp.argsort(keys, axis=1)[:, :min(num_speakers, batch - 1)]
  babble = waveform[talkers].sum(axis=1)
  return _scale_to_snr(waveform, babble, snr_db)


def add_pink_noise(rng: jax.Array, waveform: jax.Array,
                   snr_db: float) -> jax.Array:
  """Adds pink (1/f power) noise at a given signal-to-noise ratio per example.

  White Gaussian noise is shaped in the FFT domain by 1/sqrt(f) in amplitude
  (power spectral density falling 10 dB per decade, zero at DC), then scaled
  as in `add_white_noise` so that the SNR in dB holds exactly. Pink noise
  puts most of its power at low frequencies, where speech has its own.
  snr_db = +inf is the identity.

  Args:
    rng: PRNG key.
    waveform: float `[batch, samples]`.
    snr_db: target SNR in dB.

  Returns:
    The noisy waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2.
  """
  check_rank(waveform, _LAYOUT, "add_pink_noise")
  samples = waveform.shape[-1]
  white = jax.random.normal(rng, waveform.shape, jnp.float32)
  bins = jnp.arange(samples // 2 + 1, dtype=jnp.float32)
  gain = jnp.where(bins > 0, jax.lax.rsqrt(jnp.maximum(bins, 1.0)), 0.0)
  pink = jnp.fft.irfft(jnp.fft.rfft(white, axis=-1) * gain, n=samples,
                       axis=-1)
  return _scale_to_snr(waveform, pink, snr_db)


# Reverberant-to-direct energy ratio = RT60 / 0.2 s: at a fixed source
# distance the diffuse energy grows in proportion to RT60 (Sabine), and
# 0 dB at 0.2 s keeps the mildest level mild.
REVERB_REFERENCE_RT60 = 0.2
_REVERB_MAX_RT60 = 5.0


def reverberate(rng: jax.Array, waveform: jax.Array, rt60: float,
                sample_rate: float = FSDD_SAMPLE_RATE) -> jax.Array:
  """Convolves with a synthetic room impulse response of a given RT60.

  The impulse response of each example (Polack's statistical model) is a
  unit direct path at sample 0 followed by Gaussian noise under the envelope
  10^(-3 t / rt60), so its energy decays by 60 dB in rt60 seconds, scaled so
  the tail's energy is rt60 / 0.2 s times the direct path's. It is as long
  as the waveform (later samples cannot reach the output), applied by FFT
  convolution; the output keeps the first `samples` samples (the tail that
  rings past the end is cut) and is rescaled to the input's RMS per example
  (a silent example stays silent). rt60 0 is the identity.

  Args:
    rng: PRNG key (the impulse responses).
    waveform: float `[batch, samples]`.
    rt60: reverberation time in seconds, in [0, 5].
    sample_rate: in Hz, > 0 (static).

  Returns:
    The reverberant waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2, a Python `rt60` is outside
      [0, 5] or `sample_rate` <= 0.
  """
  check_rank(waveform, _LAYOUT, "reverberate")
  check_level(rt60, 0.0, _REVERB_MAX_RT60, "rt60 (seconds)", "reverberate")
  if not sample_rate > 0:
    raise ValueError(f"reverberate expects sample_rate > 0 Hz, got "
                     f"{sample_rate}")
  batch, samples = waveform.shape
  rt = jnp.clip(jnp.asarray(rt60, jnp.float32), 0.0, _REVERB_MAX_RT60)
  rt_safe = jnp.where(rt > 0, rt, 1.0)
  t = jnp.arange(samples, dtype=jnp.float32) / sample_rate
  tail = jax.random.normal(rng, (batch, samples)) * jnp.power(
      10.0, -3.0 * t / rt_safe)
  tail = tail.at[:, 0].set(0.0)
  energy = jnp.maximum(jnp.sum(jnp.square(tail), axis=-1, keepdims=True),
                       1e-30)
  tail = tail * jnp.sqrt(rt / REVERB_REFERENCE_RT60 / energy)
  response = tail.at[:, 0].set(1.0)
  n_fft = 1 << (2 * samples - 1).bit_length()
  x = waveform.astype(jnp.float32)
  wet = jnp.fft.irfft(jnp.fft.rfft(x, n_fft) * jnp.fft.rfft(response, n_fft),
                      n_fft)[:, :samples]
  rms_in = jnp.sqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True))
  rms_wet = jnp.sqrt(jnp.mean(jnp.square(wet), axis=-1, keepdims=True))
  wet = wet * jnp.where(rms_wet > 0, rms_in / jnp.maximum(rms_wet, 1e-30),
                        0.0)
  return jnp.where(rt > 0, wet, x).astype(waveform.dtype)


def clip_amplitude(rng: jax.Array, waveform: jax.Array,
                   fraction: float) -> jax.Array:
  """Hard-clips each example at `fraction` of its own peak amplitude.

  Values are limited to [-fraction * peak, fraction * peak], peak being the
  example's largest absolute sample; the output is not renormalised (its
  peak is fraction * peak). fraction 1 is the identity. Deterministic: `rng`
  is unused.

  Args:
    rng: PRNG key (unused).
    waveform: float `[batch, samples]`.
    fraction: clipping level relative to the peak, in [0, 1].

  Returns:
    The clipped waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2 or a Python `fraction` is
      outside [0, 1].
  """
  del rng
  check_rank(waveform, _LAYOUT, "clip_amplitude")
  check_level(fraction, 0.0, 1.0, "fraction", "clip_amplitude")
  f = jnp.clip(jnp.asarray(fraction, jnp.float32), 0.0, 1.0)
  limit = f * jnp.max(jnp.abs(waveform), axis=-1, keepdims=True)
  limit = limit.astype(waveform.dtype)
  return jnp.where(f < 1, jnp.clip(waveform, -limit, limit), waveform)


TELEPHONE_LOW_HZ = 300.0


def telephone_band(rng: jax.Array, waveform: jax.Array, cutoff_hz: float,
                   sample_rate: float = FSDD_SAMPLE_RATE) -> jax.Array:
  """Band-limits to [300 Hz, cutoff_hz] like a telephone channel.

  An ideal (brick-wall) band-pass applied as a mask on the FFT of the whole
  example: bins below 300 Hz (the telephone band's lower edge, ITU-T G.712)
  or above `cutoff_hz` are zeroed, the rest kept exactly. The narrowband
  telephone band ends at 3400 Hz; lower cutoffs are harsher channels.
  cutoff_hz = +inf is the identity (no low cut either). Deterministic: `rng`
  is unused.

  Args:
    rng: PRNG key (unused).
    waveform: float `[batch, samples]`.
    cutoff_hz: upper band edge in Hz, >= 300, or +inf.
    sample_rate: in Hz, > 0 (static).

  Returns:
    The band-limited waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2, a Python `cutoff_hz` is below
      300 or `sample_rate` <= 0.
  """
  del rng
  check_rank(waveform, _LAYOUT, "telephone_band")
  check_level(cutoff_hz, TELEPHONE_LOW_HZ, float("inf"), "cutoff_hz (Hz)",
               "telephone_band")
  if not sample_rate > 0:
    raise ValueError(f"telephone_band expects sample_rate > 0 Hz, got "
                     f"{sample_rate}")
  samples = waveform.shape[-1]
  cutoff = jnp.asarray(cutoff_hz, jnp.float32)
  freqs = jnp.fft.rfftfreq(samples, 1.0 / sample_rate)
  keep = (freqs >= TELEPHONE_LOW_HZ) & (freqs <= cutoff)
  x = waveform.astype(jnp.float32)
  band = jnp.fft.irfft(jnp.fft.rfft(x, axis=-1) * keep, n=samples, axis=-1)
  return jnp.where(jnp.isinf(cutoff), x, band).astype(waveform.dtype)


def mask_time_span(rng: jax.Array, waveform: jax.Array,
                   fraction: float) -> jax.Array:
  """Zeroes one contiguous span of round(fraction * samples) per example.

  The span (round half to even) lies fully inside the example, its start
  uniform over the valid positions and drawn per example: a dropout of the
  signal, as SpecAugment's time masks (Park et al. 2019) but on the
  waveform and long. fraction 0 is the identity.

  Args:
    rng: PRNG key (the span positions).
    waveform: float `[batch, samples]`.
    fraction: masked fraction of the samples, in [0, 1].

  Returns:
    The masked waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2 or a Python `fraction` is
      outside [0, 1].
  """
  check_rank(waveform, _LAYOUT, "mask_time_span")
  check_level(fraction, 0.0, 1.0, "fraction", "mask_time_span")
  batch, samples = waveform.shape
  f = jnp.clip(jnp.asarray(fraction, jnp.float32), 0.0, 1.0)
  length = jnp.round(f * samples).astype(jnp.int32)
  start = jax.random.randint(rng, (batch, 1), 0, samples - length + 1)
  index = jnp.arange(samples)
  span = (index >= start) & (index < start + length)
  return jnp.where(span, jnp.zeros((), waveform.dtype), waveform)
