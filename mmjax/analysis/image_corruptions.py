"""ImageNet-C-style image corruptions at a graded level, on device in JAX.

The families and their ImageNet-C definitions follow Hendrycks & Dietterich,
"Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations" (ICLR 2019), github.com/hendrycks/robustness; kernel sizes are
in pixels of the input (28x28 MNIST digits in this project), not of
ImageNet's 224x224. Every function takes float images `[batch, height,
width, channels]` with values in [0, 1] and returns the same shape and dtype
in [0, 1]; it runs under `jax.jit` with the level a Python float or a traced
float32 scalar (no shape or control flow depends on it). A Python level out
of range raises ValueError; the ImageNet-C families clip a traced one to
their range (it cannot be checked). Random draws come from the `rng` key
only; deterministic families ignore it.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.analysis.corruption_checks import check_level, check_rank

_LAYOUT = "[batch, height, width, channels]"


def _level(level, low: float, high: float) -> jax.Array:
  return jnp.clip(jnp.asarray(level, jnp.float32), low, high)


def _filter(images: jax.Array, kernels: jax.Array) -> jax.Array:
  """Each example correlated with its own odd `[batch, k, k]` kernel.

  Borders are mirrored without repeating the edge (OpenCV's default
  BORDER_REFLECT_101, as in ImageNet-C's cv2.filter2D).
  """
  batch, height, width, channels = images.shape
  pad = kernels.shape[-1] // 2
  x = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)),
              mode="reflect")
  # One depthwise convolution: every (example, channel) is a feature group.
  x = jnp.transpose(x, (1, 2, 0, 3)).reshape(
      1, height + 2 * pad, width + 2 * pad, batch * channels)
  w = jnp.repeat(kernels, channels, axis=0)
  w = jnp.transpose(w, (1, 2, 0))[:, :, None, :]
  out = jax.lax.conv_general_dilated(
      x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=batch * channels,
      precision=jax.lax.Precision.HIGHEST)
  return jnp.transpose(out.reshape(height, width, batch, channels),
                       (2, 0, 1, 3))


def add_gaussian_noise(rng: jax.Array, images: jax.Array,
                       std: float) -> jax.Array:
  """Adds pixel-wise Gaussian noise N(0, std^2), then clips to [0, 1].

  Args:
    rng: PRNG key.
    images: float `[batch, height, width, channels]` with values in [0, 1].
    std: noise standard deviation in pixel units, >= 0; 0 is the identity
      for images already in [0, 1].

  Returns:
    The noisy images in [0, 1], same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `std` is negative.
  """
  check_rank(images, _LAYOUT, "add_gaussian_noise")
  if isinstance(std, (int, float)) and std < 0:
    raise ValueError(f"add_gaussian_noise expects std >= 0, got {std}")
  noise = jax.random.normal(rng, images.shape, images.dtype)
  return jnp.clip(images + std * noise, 0.0, 1.0).astype(images.dtype)


def occlude(rng: jax.Array, images: jax.Array, fraction: float) -> jax.Array:
  """Zeroes one random square patch per example (all channels).

  The patch side is round(sqrt(fraction) * min(height, width)) pixels (round
  half to even), so for square images about `fraction` of the area is covered;
  for non-square ones about fraction * min(height, width) / max(height,
  width). The patch lies fully inside the image, its top-left corner uniform
  over the valid positions. fraction 0 is the identity.

  Args:
    rng: PRNG key.
    images: float `[batch, height, width, channels]`.
    fraction: occluded fraction of the area of a square image, in [0, 1].

  Returns:
    The occluded images, same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `fraction` is outside
      [0, 1].
  """
  check_rank(images, _LAYOUT, "occlude")
  if isinstance(fraction, (int, float)) and not 0 <= fraction <= 1:
    raise ValueError(f"occlude expects fraction in [0, 1], got {fraction}")
  batch, height, width, _ = images.shape
  side = jnp.round(jnp.sqrt(jnp.asarray(fraction, jnp.float32)) *
                   min(height, width)).astype(jnp.int32)
  row_rng, col_rng = jax.random.split(rng)
  top = jax.random.randint(row_rng, (batch, 1), 0, height - side + 1)
  left = jax.random.randint(col_rng, (batch, 1), 0, width - side + 1)
  rows = jnp.arange(height)
  cols = jnp.arange(width)
  in_rows = (rows >= top) & (rows < top + side)      # [batch, height]
  in_cols = (cols >= left) & (cols < left + side)    # [batch, width]
  patch = in_rows[:, :, None] & in_cols[:, None, :]
  return jnp.where(patch[..., None], jnp.zeros((), images.dtype), images)


SHOT_MAX_PHOTONS = 100.0
_POISSON_TERMS = 210   # > mean + 10 sd + 10 at the largest mean, 100


def _poisson(rng: jax.Array, mean: jax.Array) -> jax.Array:
  """Poisson(mean) counts, int32, for float32 means in [0, 100].

  Inversion (Devroye 1986, X.3): the count is the number of k whose CDF
  P(N <= k) is below one uniform draw, the CDF summed over a fixed 210
  terms in a loop of static length: unlike `jax.random.poisson`'s rejection
  loops it compiles fast and costs the same for every level. Exact up to
  float32 rounding of the CDF and the cap on the uniform draw (which moves
  at most 1.2e-4 of the probability); counts are capped at 210 (probability
  < 1e-20 at mean 100).
  """
  # Below 1 - 2^-13: the float32 CDF may sum to 1 - 1e-6, and a draw above
  # it would count every term.
  u = jax.random.uniform(rng, mean.shape, maxval=1.0 - 2.0 ** -13)
  log_mean = jnp.log(jnp.maximum(mean, 1e-30))

  def term(k, carry):
    cdf, count = carry
    count = count + (cdf < u)                 # cdf = P(N <= k - 1)
    log_p = -mean + k * log_mean - jax.lax.lgamma(k + 1.0)
    return cdf + jnp.exp(log_p), count

  _, count = jax.lax.fori_loop(
      1, _POISSON_TERMS + 1, lambda k, c: term(k.astype(jnp.float32), c),
      (jnp.exp(-mean), jnp.zeros(mean.shape, jnp.int32)))
  return count


def add_shot_noise(rng: jax.Array, images: jax.Array,
                   photons: float) -> jax.Array:
  """Poisson (shot) noise: poisson(images * photons) / photons, in [0, 1].

  ImageNet-C's shot noise (photons 60, 25, 12, 5, 3). A pixel of value x has
  mean x and variance x / photons before clipping; photons = +inf is the
  identity. Counts are drawn by inversion (`_poisson`), which bounds
  finite photons to 100 (noise std at most 0.1 for a white pixel).

  Args:
    rng: PRNG key.
    images: float `[batch, height, width, channels]` in [0, 1].
    photons: expected photon count of a white pixel, in (0, 100], or +inf.

  Returns:
    The noisy images in [0, 1], same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `photons` is outside
      (0, 100] and not +inf.
  """
  check_rank(images, _LAYOUT, "add_shot_noise")
  if isinstance(photons, (int, float)) and not (
      0 < photons <= SHOT_MAX_PHOTONS or photons == float("inf")):
    raise ValueError(f"add_shot_noise expects photons in (0, "
                     f"{SHOT_MAX_PHOTONS}] or +inf, got {photons}")
  lam = jnp.asarray(photons, jnp.float32)
  finite = jnp.isfinite(lam)
  lam = jnp.where(finite, jnp.clip(lam, 1e-3, SHOT_MAX_PHOTONS), 1.0)
  x = images.astype(jnp.float32)
  counts = _poisson(rng, jnp.clip(x, 0.0, 1.0) * lam)
  noisy = jnp.clip(counts.astype(jnp.float32) / lam, 0.0, 1.0)
  return jnp.where(finite, noisy, x).astype(images.dtype)


def add_impulse_noise(rng: jax.Array, images: jax.Array,
                      fraction: float) -> jax.Array:
  """Salt-and-pepper noise on a random `fraction` of the values.

  ImageNet-C's impulse noise (skimage `random_noise(mode="s&p")`, amounts
  .03, .06, .09, .17, .27): each value (pixel and channel independently) is
  set to 0 with probability fraction / 2 and to 1 with probability
  fraction / 2. fraction 0 is the identity.

  Args:
    rng: PRNG key.
    images: float `[batch, height, width, channels]` in [0, 1].
    fraction: expected fraction of replaced values, in [0, 1].

  Returns:
    The noisy images, same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `fraction` is outside
      [0, 1].
  """
  check_rank(images, _LAYOUT, "add_impulse_noise")
  check_level(fraction, 0.0, 1.0, "fraction", "add_impulse_noise")
  p = _level(fraction, 0.0, 1.0)
  u = jax.random.uniform(rng, images.shape)
  zero, one = jnp.zeros((), images.dtype), jnp.ones((), images.dtype)
  return jnp.where(u < p / 2, zero, jnp.where(u < p, one, images))


DEFOCUS_MAX_RADIUS = 3.0
_DEFOCUS_HALF = 3      # kernel 7x7: a disk of radius 3 lies within +-3.5
_SUPERSAMPLING = 8


def _disk_kernel(radius: jax.Array) -> jax.Array:
  """`[7, 7]` area of each pixel inside a centred disk, normalised to sum 1.

  Pixel coverage is estimated on an 8x8 sub-pixel grid, which anti-aliases
  the edge and makes the kernel continuous in the radius; a disk that covers
  no sub-pixel (radius < ~0.09) is the identity kernel.
  """
  grid = np.arange(-_DEFOCUS_HALF, _DEFOCUS_HALF + 1)
  sub = (np.arange(_SUPERSAMPLING) + 0.5) / _SUPERSAMPLING - 0.5
  pos = jnp.asarray((grid[:, None] + sub[None, :]).reshape(-1), jnp.float32)
  inside = (pos[:, None] ** 2 + pos[None, :] ** 2) <= radius ** 2
  size = grid.size
  coverage = inside.reshape(size, _SUPERSAMPLING, size,
                            _SUPERSAMPLING).mean(axis=(1, 3))
  delta = jnp.zeros((size, size)).at[_DEFOCUS_HALF, _DEFOCUS_HALF].set(1.0)
  total = coverage.sum()
  return jnp.where(total > 0, coverage / jnp.maximum(total, 1e-12), delta)


def defocus_blur(rng: jax.Array, images: jax.Array,
                 radius: float) -> jax.Array:
  """Convolves each channel with an anti-aliased disk (defocus, ImageNet-C).

  ImageNet-C convolves with a disk of radius 3 to 10 pixels at 224x224 (then
  a small Gaussian against aliasing); here the disk's pixel weights are its
  area in each pixel (anti-aliased, see `_disk_kernel`), radius up to
  `DEFOCUS_MAX_RADIUS` = 3 pixels for 28x28 digits. Radius <= 0.5 lies inside
  the centre pixel and is the identity. Borders are mirrored
  (BORDER_REFLECT_101). Deterministic: `rng` is unused.

  Args:
    rng: PRNG key (unused).
    images: float `[batch, height, width, channels]` in [0, 1], height and
      width >= 4.
    radius: disk radius in pixels, in [0, 3].

  Returns:
    The blurred images in [0, 1], same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `radius` is outside
      [0, 3].
  """
  del rng
  check_rank(images, _LAYOUT, "defocus_blur")
  check_level(radius, 0.0, DEFOCUS_MAX_RADIUS, "radius (pixels)",
               "defocus_blur")
  r = _level(radius, 0.0, DEFOCUS_MAX_RADIUS)
  kernel = jnp.broadcast_to(_disk_kernel(r), (images.shape[0],) +
                            (2 * _DEFOCUS_HALF + 1,) * 2)
  blurred = jnp.clip(_filter(images.astype(jnp.float32), kernel), 0.0, 1.0)
  return jnp.where(r > 0, blurred, images).astype(images.dtype)


MOTION_MAX_LENGTH = 8.0
_MOTION_HALF = 4       # kernel 9x9 holds a centred segment of length 8
_LINE_POINTS = 65


def motion_blur(rng: jax.Array, images: jax.Array,
                length: float) -> jax.Array:
  """Averages each example along a centred segment at a random angle.

  The analogue of ImageNet-C's motion blur (a line kernel at a random angle
  per image): the kernel is a segment of `length` pixels through the centre,
  at an angle uniform in [0, pi) drawn per example, sampled at 65 points
  bilinearly splatted onto a 9x9 grid (anti-aliased, continuous in the
  length). length 0 is the identity. Borders are mirrored
  (BORDER_REFLECT_101).

  Args:
    rng: PRNG key (the angles).
    images: float `[batch, height, width, channels]` in [0, 1], height and
      width >= 5.
    length: segment length in pixels, in [0, 8].

  Returns:
    The blurred images in [0, 1], same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `length` is outside
      [0, 8].
  """
  check_rank(images, _LAYOUT, "motion_blur")
  check_level(length, 0.0, MOTION_MAX_LENGTH, "length (pixels)",
               "motion_blur")
  n = _level(length, 0.0, MOTION_MAX_LENGTH)
  angle = jax.random.uniform(rng, (images.shape[0], 1), maxval=jnp.pi)
  t = jnp.linspace(-0.5, 0.5, _LINE_POINTS) * n                # [points]
  grid = jnp.arange(-_MOTION_HALF, _MOTION_HALF + 1, dtype=jnp.float32)
  def splat(coord):                          # [batch, points] -> [b, p, k]
    return jnp.maximum(0.0, 1.0 - jnp.abs(coord[..., None] - grid))
  # Rows go down the image, so the row coordinate is -sin.
  kernel = jnp.einsum("bpi,bpj->bij", splat(-t * jnp.sin(angle)),
                      splat(t * jnp.cos(angle))) / _LINE_POINTS
  blurred = jnp.clip(_filter(images.astype(jnp.float32), kernel), 0.0, 1.0)
  return jnp.where(n > 0, blurred, images).astype(images.dtype)


def reduce_contrast(rng: jax.Array, images: jax.Array,
                    factor: float) -> jax.Array:
  """(images - mean) * factor + mean, per example and channel (ImageNet-C).

  ImageNet-C's contrast (factors .4, .3, .2, .1, .05), the mean being over
  the pixels of each image and channel. factor 1 is the identity.
  Deterministic: `rng` is unused.

  Args:
    rng: PRNG key (unused).
    images: float `[batch, height, width, channels]` in [0, 1].
    factor: contrast factor c, in [0, 1]; the standard deviation of each
      image and channel is multiplied by c.

  Returns:
    The images in [0, 1], same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `factor` is outside
      [0, 1].
  """
  del rng
  check_rank(images, _LAYOUT, "reduce_contrast")
  check_level(factor, 0.0, 1.0, "factor", "reduce_contrast")
  c = _level(factor, 0.0, 1.0)
  x = images.astype(jnp.float32)
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  out = jnp.clip((x - mean) * c + mean, 0.0, 1.0)
  return jnp.where(c < 1, out, x).astype(images.dtype)


def increase_brightness(rng: jax.Array, images: jax.Array,
                        delta: float) -> jax.Array:
  """Adds `delta` to the HSV value channel, clipped to [0, 1] (ImageNet-C).

  ImageNet-C's brightness (.1 to .5 added to V in HSV). V is the maximum over
  the channels; raising it to min(V + delta, 1) at fixed hue and saturation
  multiplies every channel by the new V over the old (a black pixel becomes
  grey V'). With one channel this is min(x + delta, 1), computed as such.
  delta 0 is the identity. Deterministic: `rng` is unused.

  Args:
    rng: PRNG key (unused).
    images: float `[batch, height, width, channels]` in [0, 1] (RGB for 3
      channels).
    delta: brightness increase in [0, 1].

  Returns:
    The images in [0, 1], same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `delta` is outside
      [0, 1].
  """
  del rng
  check_rank(images, _LAYOUT, "increase_brightness")
  check_level(delta, 0.0, 1.0, "delta", "increase_brightness")
  b = _level(delta, 0.0, 1.0)
  x = images.astype(jnp.float32)
  if images.shape[-1] == 1:
    out = jnp.clip(x + b, 0.0, 1.0)
  else:
    value = jnp.max(x, axis=-1, keepdims=True)
    new_value = jnp.minimum(value + b, 1.0)
    out = jnp.where(value > 0, x * (new_value / jnp.maximum(value, 1e-12)),
                    new_value)
  return jnp.where(b > 0, jnp.clip(out, 0.0, 1.0), x).astype(images.dtype)


# ITU-T T.81 (JPEG) Annex K tables K.1 and K.2, as used by libjpeg (IJG).
_LUMINANCE_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
_CHROMINANCE_TABLE = np.full((8, 8), 99, np.float32)
_CHROMINANCE_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66],
                              [24, 26, 56, 99], [47, 66, 99, 99]]
# Orthonormal 8-point DCT-II: JPEG's 2-D FDCT is D @ block @ D.T.
_DCT = np.sqrt(2 / 8) * np.cos(
    np.pi * (2 * np.arange(8)[None, :] + 1) * np.arange(8)[:, None] / 16)
_DCT[0] /= np.sqrt(2)
_DCT = _DCT.astype(np.float32)
# JFIF full-range RGB -> YCbCr (without the +128 offset of Cb and Cr).
_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                   [0.5, -0.418688, -0.081312]], np.float32)


def quantisation_table(table: np.ndarray, quality) -> jax.Array:
  """libjpeg's `jpeg_quality_scaling` and `jpeg_add_quant_table`.

  quality (rounded, clipped to [1, 100]) -> scale 5000 / q (integer
  division) below 50, else 200 - 2 q; entries floor((t * scale + 50) / 100)
  clipped to [1, 255] (baseline). Returns float32 `[8, 8]`.
  """
  q = jnp.round(jnp.clip(jnp.asarray(quality, jnp.float32), 1.0, 100.0))
  scale = jnp.where(q < 50, jnp.floor(5000.0 / q), 200.0 - 2.0 * q)
  return jnp.clip(jnp.floor((table * scale + 50.0) / 100.0), 1.0, 255.0)


def jpeg_compress(rng: jax.Array, images: jax.Array,
                  quality: float) -> jax.Array:
  """Baseline JPEG compression and decompression at a libjpeg quality.

  ImageNet-C's JPEG corruption (PIL/libjpeg, qualities 80 to 7 at 224x224)
  done in float: pixels are scaled to 0..255 (RGB converted to YCbCr),
  rounded to 8-bit samples and shifted by -128, the image is
  padded to a multiple of 8 by repeating its last row and column (as libjpeg
  does), each 8x8 block goes through the DCT-II, is quantised with the IJG
  table scaled by `quality` (`quantisation_table`), rounded, dequantised and
  inverse transformed, rounded to 8 bits and clipped (then, for RGB,
  converted back, rounded and clipped again). One
  channel is coded as luminance; three (RGB) go through JFIF YCbCr, Y with
  the luminance table, Cb and Cr with the chrominance table, without chroma
  subsampling (libjpeg's default 4:2:0 would blur colour further). Lossless
  entropy coding is skipped. quality = +inf is the identity; quality 100
  (all table entries 1) is near-identity. Deterministic: `rng` is unused.

  Args:
    rng: PRNG key (unused).
    images: float `[batch, height, width, channels]` in [0, 1], 1 or 3
      channels.
    quality: libjpeg quality in [1, 100] (rounded to an integer), or +inf.

  Returns:
    The decoded images in [0, 1] (multiples of 1/255), same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4, has neither 1 nor 3 channels, or
      a Python `quality` is outside [1, 100] and not +inf.
  """
  del rng
  check_rank(images, _LAYOUT, "jpeg_compress")
  batch, height, width, channels = images.shape
  if channels not in (1, 3):
    raise ValueError(f"jpeg_compress expects 1 or 3 channels, got "
                     f"{channels}")
  if not (isinstance(quality, (int, float)) and quality == float("inf")):
    check_level(quality, 1.0, 100.0, "quality", "jpeg_compress")
  level = jnp.asarray(quality, jnp.float32)
  x = images.astype(jnp.float32) * 255.0
  tables = jnp.stack([quantisation_table(_LUMINANCE_TABLE, level)] +
                     [quantisation_table(_CHROMINANCE_TABLE, level)] * 2)
  if channels == 3:
    x = jnp.einsum("bhwc,dc->bhwd", x, _YCBCR,
                   precision=jax.lax.Precision.HIGHEST)
    x = x.at[..., 1:].add(128.0)
  # The encoder's input planes are 8-bit samples, shifted by -128.
  x = jnp.clip(jnp.round(x), 0.0, 255.0) - 128.0
  tables = tables[:channels]
  ph, pw = -height % 8, -width % 8
  x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
  blocks = x.reshape(batch, (height + ph) // 8, 8, (width + pw) // 8, 8,
                     channels)
  hi = jax.lax.Precision.HIGHEST
  coef = jnp.einsum("ui,bYiXjc,vj->bYuXvc", _DCT, blocks, _DCT, precision=hi)
  table = jnp.transpose(tables, (1, 2, 0))[None, None, :, None]   # u,v,c
  coef = jnp.round(coef / table) * table
  blocks = jnp.einsum("ui,bYuXvc,vj->bYiXjc", _DCT, coef, _DCT, precision=hi)
  x = blocks.reshape(x.shape)[:, :height, :width]
  # The decoder's planes are 8-bit samples too.
  x = jnp.clip(jnp.round(x + 128.0), 0.0, 255.0)
  if channels == 3:
    x = x.at[..., 1:].add(-128.0)
    x = jnp.einsum("bhwd,cd->bhwc", x, np.linalg.inv(_YCBCR), precision=hi)
    x = jnp.clip(jnp.round(x), 0.0, 255.0)
  out = x / 255.0
  return jnp.where(jnp.isinf(level), images.astype(jnp.float32),
                   out).astype(images.dtype)


def pixelate(rng: jax.Array, images: jax.Array, block: float) -> jax.Array:
  """Replaces each block of pixels by its mean (ImageNet-C's pixelate).

  ImageNet-C box-resizes down by a factor c and back up; when the side is
  divisible this is the mean of each `block` x `block` square, repeated over
  it, done here with `[height, height]` and `[width, width]` averaging
  matrices. Pixel i belongs to block floor(i / block), so blocks start at the
  top-left corner and the last row and column of blocks is partial when the
  side is not a multiple of the block (a non-integer block gives blocks of
  alternating integer sizes). block 1 is the identity. Deterministic: `rng`
  is unused.

  Args:
    rng: PRNG key (unused).
    images: float `[batch, height, width, channels]` in [0, 1].
    block: block side in pixels, in [1, min(height, width)].

  Returns:
    The pixelated images in [0, 1], same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `block` is outside
      [1, min(height, width)].
  """
  del rng
  check_rank(images, _LAYOUT, "pixelate")
  _, height, width, _ = images.shape
  check_level(block, 1.0, float(min(height, width)), "block (pixels)",
               "pixelate")
  side = _level(block, 1.0, float(min(height, width)))

  def averaging(n):
    group = jnp.floor(jnp.arange(n) / side)
    same = (group[:, None] == group[None, :]).astype(jnp.float32)
    return same / same.sum(axis=1, keepdims=True)

  x = images.astype(jnp.float32)
  out = jnp.einsum("ih,bhwc,jw->bijc", averaging(height), x, averaging(width),
                   precision=jax.lax.Precision.HIGHEST)
  return jnp.where(side > 1, jnp.clip(out, 0.0, 1.0),
                   x).astype(images.dtype)
