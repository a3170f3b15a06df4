import functools
import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from mmjax.analysis import audio_corruptions as audio
from mmjax.analysis import image_corruptions as image
from mmjax.analysis.corruptions import CORRUPTIONS
from mmjax.analysis.corruptions import add_babble_noise
from mmjax.analysis.corruptions import add_gaussian_noise
from mmjax.analysis.corruptions import add_white_noise
from mmjax.analysis.corruptions import occlude


def _waveforms(batch=4, samples=8000, seed=0):
  """Sines of different frequencies and amplitudes, [batch, samples]."""
  t = np.arange(samples) / 8000.0
  rng = np.random.default_rng(seed)
  freqs = rng.uniform(100.0, 1000.0, batch)
  amps = rng.uniform(0.05, 0.8, batch)
  return jnp.asarray(amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t),
                     jnp.float32)


def _snr_db(clean, noisy):
  clean = np.asarray(clean, np.float64)
  noise = np.asarray(noisy, np.float64) - clean
  return 10 * np.log10(np.mean(clean ** 2, -1) / np.mean(noise ** 2, -1))


def _blocks(batch=6, width=100):
  """Example i is non-zero (random values) only on samples [i*w, (i+1)*w)."""
  values = np.random.default_rng(1).uniform(0.5, 1.0, (batch, batch * width))
  own = np.arange(batch * width)[None, :] // width == np.arange(batch)[:, None]
  return jnp.asarray(values * own, jnp.float32), own


def _images(batch=16, size=28, channels=1, value=None, seed=0):
  if value is not None:
    return jnp.full((batch, size, size, channels), value, jnp.float32)
  # In (0.5, 1], so no pixel is zero before occlusion.
  return 1.0 - 0.5 * jax.random.uniform(
      jax.random.key(seed), (batch, size, size, channels))


@pytest.mark.parametrize("snr_db", [20.0, 5.0, 0.0, -5.0])
def test_white_noise_snr(snr_db):
  clean = _waveforms()
  noisy = add_white_noise(jax.random.key(0), clean, snr_db)
  assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
  np.testing.assert_allclose(_snr_db(clean, noisy), snr_db, atol=0.5)
  # The noise is white: its lag-1 autocorrelation is near 0.
  noise = np.asarray(noisy - clean)
  lag1 = np.mean(noise[:, 1:] * noise[:, :-1]) / np.mean(noise ** 2)
  assert abs(lag1) < 0.05


@pytest.mark.parametrize("snr_db", [20.0, 0.0, -5.0])
def test_babble_noise_snr(snr_db):
  clean = _waveforms(batch=8)
  noisy = add_babble_noise(jax.random.key(1), clean, snr_db)
  np.testing.assert_allclose(_snr_db(clean, noisy), snr_db, atol=0.5)


@pytest.mark.parametrize("num_speakers", [1, 3, 5])
def test_babble_is_made_of_other_examples(num_speakers):
  clean, own = _blocks()
  noisy = add_babble_noise(jax.random.key(2), clean, 0.0, num_speakers)
  noise = np.asarray(noisy - clean)
  batch = clean.shape[0]
  talker_sets = set()
  for i in range(batch):
    # Never the example itself.
    np.testing.assert_array_equal(noise[i][own[i]], 0.0)
    talkers = [j for j in range(batch) if np.abs(noise[i][own[j]]).max() > 0]
    assert len(talkers) == num_speakers
    for j in talkers:
      # Each talker is a scaled copy of example j, all with the same scale.
      ratio = noise[i][own[j]] / np.asarray(clean)[j][own[j]]
      np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
    talker_sets.add(tuple(talkers))
  # Talkers are drawn per example, not one shared set.
  assert len(talker_sets) > 1


def test_babble_talkers_capped_at_batch_minus_one():
  clean, own = _blocks(batch=2)
  noise = np.asarray(add_babble_noise(jax.random.key(3), clean, 0.0, 3) -
                     clean)
  np.testing.assert_array_equal(noise[0][own[0]], 0.0)
  assert np.abs(noise[0][own[1]]).min() > 0


@pytest.mark.parametrize("fn", [add_white_noise, add_babble_noise])
def test_silent_example_stays_zero_and_finite(fn):
  clean = _waveforms(batch=3).at[1].set(0.0)
  noisy = np.asarray(fn(jax.random.key(4), clean, -5.0))
  assert np.all(np.isfinite(noisy))
  np.testing.assert_array_equal(noisy[1], 0.0)
  assert np.abs(noisy[0] - np.asarray(clean[0])).max() > 0


def test_babble_with_silent_talkers_adds_nothing():
  clean = jnp.zeros((2, 100)).at[0].set(1.0)
  noisy = np.asarray(add_babble_noise(jax.random.key(5), clean, 0.0))
  assert np.all(np.isfinite(noisy))
  np.testing.assert_array_equal(noisy, np.asarray(clean))


def test_audio_rejects_bad_inputs():
  with pytest.raises(ValueError, match="batch >= 2"):
    add_babble_noise(jax.random.key(0), jnp.ones((1, 100)), 0.0)
  with pytest.raises(ValueError, match="num_speakers"):
    add_babble_noise(jax.random.key(0), jnp.ones((4, 100)), 0.0, 0)
  for fn in (add_white_noise, add_babble_noise):
    with pytest.raises(ValueError, match=r"\[batch, samples\]"):
      fn(jax.random.key(0), jnp.ones((4, 100, 1)), 0.0)


def test_gaussian_noise_std_and_range():
  grey = _images(batch=32, value=0.5)
  noisy = np.asarray(add_gaussian_noise(jax.random.key(6), grey, 0.1))
  # 0.5 is 5 std from the clip bounds, so clipping is negligible.
  assert np.std(noisy - 0.5) == pytest.approx(0.1, rel=0.02)
  assert abs(np.mean(noisy - 0.5)) < 0.002
  heavy = np.asarray(add_gaussian_noise(jax.random.key(7), grey, 0.8))
  assert heavy.min() == 0.0 and heavy.max() == 1.0  # clipped, not beyond
  assert 0.3 < np.mean((heavy == 0.0) | (heavy == 1.0)) < 0.8


def test_gaussian_noise_rejects_bad_inputs():
  with pytest.raises(ValueError, match="std"):
    add_gaussian_noise(jax.random.key(0), _images(batch=1), -0.1)
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    add_gaussian_noise(jax.random.key(0), jnp.ones((2, 28, 28)), 0.1)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.4, 0.6, 0.8, 1.0])
def test_occlusion_covers_requested_fraction(fraction):
  images = _images(channels=3)
  out = np.asarray(occlude(jax.random.key(8), images, fraction))
  zero = out == 0.0
  # All channels of a pixel together.
  np.testing.assert_array_equal(zero, np.broadcast_to(zero[..., :1],
                                                      zero.shape))
  np.testing.assert_array_equal(out[~zero], np.asarray(images)[~zero])
  exact = math.sqrt(fraction) * 28
  side = round(exact)
  # Rounding the side by at most 0.5 moves the area fraction by at most
  # (exact + 0.25) / 28**2, below 0.035 for 28x28.
  tolerance = (exact + 0.25) / 28 ** 2
  positions = set()
  for example in zero[..., 0]:
    rows = np.flatnonzero(example.any(axis=1))
    cols = np.flatnonzero(example.any(axis=0))
    # One solid side x side square.
    assert len(rows) == len(cols) == side
    assert example.sum() == side ** 2
    assert example[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
    assert abs(example.mean() - fraction) <= tolerance
    positions.add((rows[0], cols[0]))
  if fraction < 1.0:
    assert len(positions) > 1


def test_occlusion_of_zero_is_identity():
  images = _images()
  out = occlude(jax.random.key(9), images, 0.0)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(images))


def test_occlusion_rejects_bad_inputs():
  with pytest.raises(ValueError, match="fraction"):
    occlude(jax.random.key(0), _images(batch=1), 1.5)
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    occlude(jax.random.key(0), jnp.ones((28, 28, 1)), 0.1)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_registry_runs_under_jit_and_clean_level_is_identity(name):
  corruption = CORRUPTIONS[name]
  # The sweep tests' input: they reuse the traced compilation.
  x = _sweep_input(corruption.modality)
  assert corruption.sweep_levels[0] == corruption.clean_level
  assert len(corruption.sweep_levels) == len(corruption.levels) + 1
  jitted = jax.jit(corruption.apply, static_argnums=2)
  eager_out = corruption.apply(jax.random.key(10), x, corruption.levels[2])
  jit_out = jitted(jax.random.key(10), x, corruption.levels[2])
  np.testing.assert_allclose(np.asarray(jit_out), np.asarray(eager_out),
                             atol=1e-5)
  assert not np.allclose(np.asarray(jit_out), np.asarray(x))
  # A traced level works too.
  traced_out = jax.jit(corruption.apply)(jax.random.key(10), x,
                                         corruption.levels[2])
  np.testing.assert_allclose(np.asarray(traced_out), np.asarray(eager_out),
                             atol=1e-5)
  clean = jitted(jax.random.key(11), x, corruption.clean_level)
  np.testing.assert_array_equal(np.asarray(clean), np.asarray(x))


def test_registry_contents():
  inf = math.inf
  expected = {
      "audio_white_noise": ("audio", add_white_noise, "SNR dB", inf),
      "audio_babble_noise": ("audio", add_babble_noise, "SNR dB", inf),
      "image_gaussian_noise": ("image", add_gaussian_noise, "noise std", 0.0),
      "image_occlusion": ("image", occlude, "occluded fraction", 0.0),
      "image_shot_noise": ("image", image.add_shot_noise,
                           "photons per white pixel", inf),
      "image_impulse_noise": ("image", image.add_impulse_noise,
                              "replaced fraction", 0.0),
      "image_defocus_blur": ("image", image.defocus_blur, "disk radius px",
                             0.0),
      "image_motion_blur": ("image", image.motion_blur, "blur length px",
                            0.0),
      "image_contrast": ("image", image.reduce_contrast, "contrast factor",
                         1.0),
      "image_brightness": ("image", image.increase_brightness,
                           "brightness increase", 0.0),
      "image_jpeg": ("image", image.jpeg_compress, "JPEG quality", inf),
      "image_pixelate": ("image", image.pixelate, "block side px", 1.0),
      "audio_pink_noise": ("audio", audio.add_pink_noise, "SNR dB", inf),
      "audio_reverberation": ("audio", audio.reverberate, "RT60 s", 0.0),
      "audio_clipping": ("audio", audio.clip_amplitude, "clip level / peak",
                         1.0),
      "audio_telephone": ("audio", audio.telephone_band,
                          "upper band edge Hz", inf),
      "audio_time_mask": ("audio", audio.mask_time_span, "masked fraction",
                          0.0),
  }
  assert set(CORRUPTIONS) == set(expected)
  for name, (modality, apply, unit, clean_level) in expected.items():
    corruption = CORRUPTIONS[name]
    assert (corruption.modality, corruption.apply, corruption.unit,
            corruption.clean_level) == (modality, apply, unit, clean_level)
    assert len(corruption.levels) == 5
  assert CORRUPTIONS["audio_white_noise"].levels == (20, 10, 5, 0, -5)
  assert CORRUPTIONS["image_occlusion"].levels == (0.1, 0.25, 0.4, 0.6, 0.8)
  with pytest.raises(AttributeError):
    CORRUPTIONS["image_occlusion"].levels = ()  # frozen


def test_babble_jit_with_static_num_speakers():
  clean, own = _blocks()
  fn = jax.jit(functools.partial(add_babble_noise, num_speakers=2),
               static_argnums=2)
  noise = np.asarray(fn(jax.random.key(12), clean, 10.0) - clean)
  for i in range(clean.shape[0]):
    np.testing.assert_array_equal(noise[i][own[i]], 0.0)
    talkers = [j for j in range(clean.shape[0])
               if np.abs(noise[i][own[j]]).max() > 0]
    assert len(talkers) == 2


# The image and audio inputs of the sweep tests: one shape per modality, so
# the jitted sweeps below compile once per family.
_TONES_HZ = (150.0, 1000.0, 1500.0, 2100.0, 2900.0, 3700.0)
_DETERMINISTIC_FAMILIES = {
    "image_defocus_blur", "image_contrast", "image_brightness", "image_jpeg",
    "image_pixelate", "audio_clipping", "audio_telephone"}


def _sweep_input(modality):
  if modality == "image":
    # Binary RGB texture of 0.1 and 0.9: detail and edges everywhere (JPEG
    # at the lowest qualities still differs), room for every family.
    u = jax.random.uniform(jax.random.key(20), (4, 28, 28, 3))
    return jnp.where(u < 0.5, 0.1, 0.9)
  # Tones in every band between the telephone cutoffs, random phases.
  rng = np.random.default_rng(21)
  t = np.arange(8000) / 8000.0
  phases = rng.uniform(0, 2 * np.pi, (4, len(_TONES_HZ), 1))
  amps = rng.uniform(0.1, 0.3, (4, len(_TONES_HZ), 1))
  tones = amps * np.sin(2 * np.pi * np.array(_TONES_HZ)[:, None] * t +
                        phases)
  return jnp.asarray(tones.sum(axis=1), jnp.float32)


def _run_sweep(name, x, levels, seed=30):
  """`[len(levels), *x.shape]`: jitted `apply` at each level, traced (one
  compilation per family and input shape, shared with the registry test)."""
  fn = jax.jit(CORRUPTIONS[name].apply)
  return np.stack([np.asarray(fn(jax.random.key(seed), x, float(level)))
                   for level in levels])


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_sweep_contract(name):
  """Traced levels: shape, dtype, range, identity at the clean level, the
  distance to clean growing with severity, and seeding."""
  corruption = CORRUPTIONS[name]
  x = _sweep_input(corruption.modality)
  out = _run_sweep(name, x, corruption.sweep_levels)
  assert out.shape == (6,) + x.shape and out.dtype == x.dtype
  if corruption.modality == "image":
    assert out.min() >= 0.0 and out.max() <= 1.0
  np.testing.assert_array_equal(out[0], np.asarray(x))
  rmse = np.sqrt(np.mean((out - np.asarray(x)) ** 2, axis=(1, 2) if
                         x.ndim == 2 else (1, 2, 3, 4)))
  assert np.all(np.diff(rmse) > 0), rmse
  again = _run_sweep(name, x, corruption.sweep_levels)
  np.testing.assert_array_equal(again, out)
  other = _run_sweep(name, x, corruption.sweep_levels, seed=31)
  if name in _DETERMINISTIC_FAMILIES:
    np.testing.assert_array_equal(other, out)
  else:
    assert not np.array_equal(other[1:], out[1:])


def test_traced_levels_match_python_levels_everywhere():
  # The contract above runs traced; here every level of two families with
  # level-dependent kernels against the Python-float call.
  x = _sweep_input("image")
  for name in ("image_defocus_blur", "image_pixelate"):
    levels = CORRUPTIONS[name].sweep_levels
    traced = _run_sweep(name, x, levels)
    for i, level in enumerate(levels):
      eager = CORRUPTIONS[name].apply(jax.random.key(30), x, level)
      np.testing.assert_allclose(traced[i], np.asarray(eager), atol=1e-5)


def test_shot_noise_variance():
  lam = np.array(CORRUPTIONS["image_shot_noise"].levels)
  grey = jnp.full((4, 28, 28, 3), 0.2, jnp.float32)
  out = _run_sweep("image_shot_noise", grey,
                   CORRUPTIONS["image_shot_noise"].sweep_levels)
  out = out[1:].reshape(5, -1)
  np.testing.assert_allclose(out.mean(axis=1), 0.2, rtol=0.03)
  # Var = x / lam: counts ~ Poisson(0.2 lam), divided by lam.
  np.testing.assert_allclose(out.var(axis=1), 0.2 / lam, rtol=0.08)
  # Values are counts / lam.
  np.testing.assert_allclose(out * lam[:, None], np.round(out * lam[:, None]),
                             atol=1e-4)


def test_impulse_noise_fraction():
  x = _sweep_input("image")
  levels = CORRUPTIONS["image_impulse_noise"].levels
  out = _run_sweep("image_impulse_noise", x,
                   CORRUPTIONS["image_impulse_noise"].sweep_levels)[1:]
  n = x.size
  for p, o in zip(levels, out):
    changed = o != np.asarray(x)
    np.testing.assert_array_equal(np.isin(o[changed], [0.0, 1.0]), True)
    tolerance = 4 * math.sqrt(p / 2 * n) / n
    assert abs(np.mean(o == 0.0) - p / 2) < tolerance
    assert abs(np.mean(o == 1.0) - p / 2) < tolerance


def _point_image(batch=3):
  return jnp.zeros((batch, 15, 15, 1)).at[:, 7, 7, 0].set(1.0)


def _moments(kernels):
  """Second moments [batch, 2, 2] (rows, cols) of [batch, k, k] weights."""
  k = kernels.shape[-1]
  grid = np.arange(k) - k // 2
  rr, cc = np.meshgrid(grid, grid, indexing="ij")
  coords = np.stack([rr, cc])                          # [2, k, k]
  return np.einsum("bij,xij,yij->bxy", kernels, coords, coords)


def _high_frequency_energy(images):
  """Energy of the horizontal and vertical pixel differences per level."""
  dx = np.diff(images, axis=-2)
  dy = np.diff(images, axis=-3)
  return (dx ** 2).sum(axis=(1, 2, 3, 4)) + (dy ** 2).sum(axis=(1, 2, 3, 4))


@pytest.mark.parametrize("name", ["image_defocus_blur", "image_motion_blur"])
def test_blur_keeps_mean_and_removes_high_frequencies(name):
  # Content 5 px from the borders: the kernels (<= 9x9) never reach them.
  x = _sweep_input("image")
  x = jnp.zeros_like(x).at[:, 5:-5, 5:-5].set(x[:, 5:-5, 5:-5])
  levels = CORRUPTIONS[name].sweep_levels
  out = _run_sweep(name, x, levels)
  np.testing.assert_allclose(out.sum(axis=(2, 3)),
                             np.broadcast_to(np.asarray(x).sum(axis=(1, 2)),
                                             (6, 4, 3)), rtol=1e-5)
  energy = _high_frequency_energy(out)
  assert np.all(np.diff(energy) < 0), energy
  # The kernel itself, from a point: a disk of area pi r^2 or a segment of
  # the given length (moment L^2 / 12 along it, plus 1/6 from the bilinear
  # splat).
  kernels = _run_sweep(name, _point_image(), levels)[1:, ..., 0]
  for level, k in zip(levels[1:], kernels):
    np.testing.assert_allclose(k.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    eig = np.linalg.eigvalsh(_moments(k))               # [batch, 2]
    if name == "image_defocus_blur":
      # Isotropic, and the fully covered centre pixel holds 1 / (pi r^2).
      np.testing.assert_allclose(eig[:, 0], eig[:, 1], rtol=1e-5)
      np.testing.assert_allclose(k[:, 7, 7], 1 / (math.pi * level ** 2),
                                 rtol=0.05)
    else:
      np.testing.assert_allclose(eig[:, 1], level ** 2 / 12 + 1 / 6,
                                 rtol=0.1)
      assert np.all(eig[:, 0] < 0.25)
  # A random angle per example.
  assert len({tuple(np.round(k.ravel(), 4)) for k in kernels[-1]}) == (
      3 if name == "image_motion_blur" else 1)


def test_contrast_scales_std_and_keeps_mean():
  x = np.asarray(_sweep_input("image"))
  levels = CORRUPTIONS["image_contrast"].levels
  out = _run_sweep("image_contrast", jnp.asarray(x),
                   CORRUPTIONS["image_contrast"].sweep_levels)[1:]
  for c, o in zip(levels, out):
    np.testing.assert_allclose(o.std(axis=(1, 2)), c * x.std(axis=(1, 2)),
                               rtol=1e-4)
    np.testing.assert_allclose(o.mean(axis=(1, 2)), x.mean(axis=(1, 2)),
                               rtol=1e-5)


def test_brightness_adds_to_value_at_fixed_hue():
  levels = CORRUPTIONS["image_brightness"].levels
  rgb = np.asarray(_sweep_input("image"))
  out = _run_sweep("image_brightness", jnp.asarray(rgb),
                   CORRUPTIONS["image_brightness"].sweep_levels)[1:]
  for b, o in zip(levels, out):
    np.testing.assert_allclose(o.max(axis=-1),
                               np.minimum(rgb.max(axis=-1) + b, 1.0),
                               rtol=1e-6)
    # Hue and saturation: the channels keep their ratios.
    np.testing.assert_allclose(o / o.max(axis=-1, keepdims=True),
                               rgb / rgb.max(axis=-1, keepdims=True),
                               rtol=1e-5)
  grey = rgb[..., :1]
  out = image.increase_brightness(jax.random.key(0), jnp.asarray(grey), 0.3)
  np.testing.assert_allclose(np.asarray(out), np.minimum(grey + 0.3, 1.0),
                             rtol=1e-6)


def _pil_jpeg(images, quality):
  """libjpeg (via PIL) round trip of [batch, h, w, c] uint8, 4:4:4."""
  out = []
  for example in images:
    mode = "L" if example.shape[-1] == 1 else "RGB"
    buffer = io.BytesIO()
    Image.fromarray(example.squeeze(-1) if mode == "L" else example,
                    mode).save(buffer, "JPEG", quality=int(quality),
                               subsampling=0)
    buffer.seek(0)
    decoded = Image.open(buffer)
    out.append(np.asarray(decoded).reshape(example.shape))
    tables = decoded.quantization
  return np.stack(out), tables


def test_jpeg_quantisation_tables_are_libjpeg_s():
  for quality in (2, 10, 25, 49, 50, 51, 75, 90, 100):
    _, tables = _pil_jpeg(np.zeros((1, 8, 8, 3), np.uint8), quality)
    for index, table in ((0, image._LUMINANCE_TABLE),
                         (1, image._CHROMINANCE_TABLE)):
      np.testing.assert_array_equal(
          np.asarray(image.quantisation_table(table, quality)).ravel(),
          np.asarray(tables[index]), err_msg=f"quality {quality}")


def _rings(batch=4):
  """Smooth coloured rings in [0, 1], [batch, 28, 28, 3]: digit-like."""
  rng = np.random.default_rng(22)
  rows, cols = np.mgrid[:28, :28]
  out = []
  for _ in range(batch):
    cy, cx, radius = rng.uniform(9, 19), rng.uniform(9, 19), rng.uniform(5, 9)
    ring = np.exp(-((np.hypot(rows - cy, cols - cx) - radius) / 1.5) ** 2)
    out.append(np.stack([ring, ring * rng.uniform(0.3, 1),
                         ring[::-1] * rng.uniform(0.3, 1)], axis=-1))
  return np.array(out)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_matches_libjpeg_and_degrades_with_quality(channels):
  pixels = np.round(_rings()[..., :channels] * 255).astype(np.uint8)
  x = jnp.asarray(pixels / 255.0, jnp.float32)
  qualities = (100,) + CORRUPTIONS["image_jpeg"].levels
  out = _run_sweep("image_jpeg", x, qualities) * 255
  errors = []
  for quality, o in zip(qualities, out):
    reference, _ = _pil_jpeg(pixels, quality)
    reference = reference.astype(np.float64)
    # libjpeg's integer DCT and colour conversion round differently: a
    # coefficient near a step edge may land one step away, so not bit-exact,
    # but the same distortion.
    diff = np.abs(o - reference)
    assert np.mean(diff) < 0.6 and np.mean(diff <= 2) > 0.9, quality
    error = np.abs(o - pixels).mean()
    assert error == pytest.approx(np.abs(reference - pixels).mean(),
                                  rel=0.03, abs=0.05), quality
    errors.append(error)
  assert errors[0] < 0.3               # quality 100: near-identity (levels)
  assert np.all(np.diff(errors) > 0), errors


@pytest.mark.parametrize("block", [2.0, 3.0, 4.0, 7.0])
def test_pixelate_is_constant_block_means(block):
  x = np.asarray(_sweep_input("image"))
  out = np.asarray(image.pixelate(jax.random.key(0), jnp.asarray(x), block))
  b = int(block)
  for top in range(0, 28, b):
    for left in range(0, 28, b):
      patch = out[:, top:top + b, left:left + b]
      mean = x[:, top:top + b, left:left + b].mean(axis=(1, 2))
      np.testing.assert_allclose(patch, np.broadcast_to(
          mean[:, None, None], patch.shape), rtol=1e-5)


def _levels_and_outputs(name, x):
  """The levels of `name` and the outputs at them (the clean one dropped)."""
  corruption = CORRUPTIONS[name]
  return corruption.levels, _run_sweep(name, x, corruption.sweep_levels)[1:]


def test_pink_noise_snr_and_spectral_slope():
  x = _sweep_input("audio")
  levels, out = _levels_and_outputs("audio_pink_noise", x)
  for snr, o in zip(levels, out):
    np.testing.assert_allclose(_snr_db(x, o), snr, atol=0.01)
  noise = out[-1] - np.asarray(x)
  power = np.mean(np.abs(np.fft.rfft(noise, axis=-1)) ** 2, axis=0)
  freqs = np.fft.rfftfreq(8000, 1 / 8000)
  # Power averaged in log-spaced bands from 20 Hz to 3.5 kHz.
  edges = np.geomspace(20, 3500, 12)
  centres = np.sqrt(edges[1:] * edges[:-1])
  band = [power[(freqs >= lo) & (freqs < hi)].mean()
          for lo, hi in zip(edges[:-1], edges[1:])]
  slope = np.polyfit(np.log10(centres), 10 * np.log10(band), 1)[0]
  assert slope == pytest.approx(-10.0, abs=1.0)   # dB per decade


def test_reverberation_decay_matches_rt60():
  levels, responses = _levels_and_outputs(
      "audio_reverberation", jnp.zeros((4, 8000)).at[:, 0].set(1.0))
  t = np.arange(8000) / 8000.0
  for rt60, response in zip(levels, responses):
    # Rescaled to the input's RMS: total energy 1 sample squared.
    np.testing.assert_allclose(np.sum(response ** 2, axis=-1), 1.0,
                               rtol=1e-4)
    tail = response[:, 1:] ** 2
    # Direct-to-reverberant energy ratio 0.2 s / RT60.
    np.testing.assert_allclose(response[:, 0] ** 2 / tail.sum(-1),
                               0.2 / rt60, rtol=1e-3)
    # Schroeder backward integral; a line through its -5 to -25 dB part.
    decay = np.cumsum(tail[:, ::-1], axis=-1)[:, ::-1]
    decay_db = 10 * np.log10(decay / decay[:, :1])
    for curve in decay_db:
      fit = (curve < -5) & (curve > -25)
      slope = np.polyfit(t[1:][fit], curve[fit], 1)[0]
      assert -60 / slope == pytest.approx(rt60, rel=0.1)


def test_clipping_at_fraction_of_peak():
  x = np.asarray(_sweep_input("audio"))
  levels, out = _levels_and_outputs("audio_clipping", jnp.asarray(x))
  peak = np.abs(x).max(axis=-1, keepdims=True)
  for fraction, o in zip(levels, out):
    limit = fraction * peak
    np.testing.assert_allclose(np.abs(o).max(axis=-1, keepdims=True), limit,
                               rtol=1e-6)
    below = np.abs(x) < limit
    np.testing.assert_array_equal(o[below], x[below])
    np.testing.assert_allclose(np.abs(o[~below]),
                               np.broadcast_to(limit, x.shape)[~below],
                               rtol=1e-6)


def test_telephone_removes_energy_outside_the_band():
  x = np.asarray(_sweep_input("audio"))
  levels, out = _levels_and_outputs("audio_telephone", jnp.asarray(x))
  freqs = np.fft.rfftfreq(8000, 1 / 8000)
  spectrum = np.fft.rfft(x, axis=-1)
  for cutoff, o in zip(levels, out):
    band = np.fft.rfft(o, axis=-1)
    inside = (freqs >= 300) & (freqs <= cutoff)
    energy = np.sum(np.abs(spectrum) ** 2)
    assert np.sum(np.abs(band[:, ~inside]) ** 2) < 1e-8 * energy
    np.testing.assert_allclose(band[:, inside], spectrum[:, inside],
                               atol=1e-3 * np.abs(spectrum).max())
    kept = [f for f in _TONES_HZ if 300 <= f <= cutoff]
    assert np.sum(np.abs(band) ** 2) == pytest.approx(
        energy * len(kept) / len(_TONES_HZ), rel=0.25, abs=1e-8 * energy)


def test_time_mask_zeroes_one_span_of_the_fraction():
  x = 1.5 + _sweep_input("audio")          # no zero sample before masking
  levels, out = _levels_and_outputs("audio_time_mask", x)
  for fraction, o in zip(levels, out):
    starts = set()
    for row, clean in zip(o, np.asarray(x)):
      zero = np.flatnonzero(row == 0.0)
      assert len(zero) == round(fraction * 8000)
      assert zero[-1] - zero[0] + 1 == len(zero)     # contiguous
      np.testing.assert_array_equal(row[row != 0], clean[row != 0])
      starts.add(zero[0])
    assert len(starts) > 1


@pytest.mark.parametrize("fn,level", [
    (image.add_shot_noise, 0.0), (image.add_impulse_noise, 1.5),
    (image.defocus_blur, 3.5), (image.motion_blur, -1.0),
    (image.reduce_contrast, 1.2), (image.increase_brightness, -0.1),
    (image.jpeg_compress, 0.0), (image.pixelate, 0.5),
    (audio.reverberate, -0.1), (audio.clip_amplitude, 1.1),
    (audio.telephone_band, 100.0), (audio.mask_time_span, 2.0)])
def test_new_families_reject_bad_inputs(fn, level):
  name = fn.__name__
  if fn.__module__ == image.__name__:
    good, bad_rank = _images(batch=2, channels=3), jnp.ones((2, 28, 28))
  else:
    good, bad_rank = _waveforms(batch=2, samples=64), jnp.ones((2, 64, 1))
  with pytest.raises(ValueError, match=name):
    fn(jax.random.key(0), good, level)
  with pytest.raises(ValueError, match=rf"{name} expects \["):
    fn(jax.random.key(0), bad_rank, CORRUPTIONS[next(
        n for n, c in CORRUPTIONS.items() if c.apply is fn)].levels[0])


def test_pink_noise_rejects_bad_rank_and_jpeg_bad_channels():
  with pytest.raises(ValueError, match=r"add_pink_noise expects \[batch"):
    audio.add_pink_noise(jax.random.key(0), jnp.ones((2, 4, 4)), 0.0)
  with pytest.raises(ValueError, match="1 or 3 channels"):
    image.jpeg_compress(jax.random.key(0), jnp.ones((1, 8, 8, 2)), 50.0)
  with pytest.raises(ValueError, match="sample_rate"):
    audio.reverberate(jax.random.key(0), jnp.ones((1, 8)), 0.2, 0)
