"""Convolution, GroupNorm and max-pooling in formulations that XLA compiles
well on CPU as well as on accelerators.

Each is a drop-in replacement for its flax.linen / lax counterpart: same
parameters (names, shapes, initialisers), same outputs up to float32
rounding. They exist because of measured costs of the av_digits train step
on XLA:CPU (benchmarks/RESULTS.md, "Where the av_digits train step's time
goes"): `reduce_window` max-pooling's
backward pass (select-and-scatter), flax GroupNorm's reductions over a
`[..., groups, group_size]` view, and convolutions of inputs with one or a
few channels were the three largest costs after the convolutions proper.
"""

import functools
from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# A 3x3 convolution of an input with at most this many channels is computed
# as one matmul of its 3x3 patches: [N, 9 * C] @ [9 * C, O]. Measured on the
# 2-core CPU (benchmarks/RESULTS.md): 1.7x faster forward + backward for
# C = 1; slower than XLA's convolution from C = 16 on, where the patches
# tensor costs more memory traffic than the matmul saves.
PATCH_MATMUL_MAX_CHANNELS = 4


def _same_padding(size: int) -> Tuple[int, int]:
  return (size - 1) // 2, size // 2


def _patches(x: Array, kernel_size: Tuple[int, int]) -> Array:
  """`[batch, h, w, c]` -> `[batch, h, w, kh * kw * c]`, SAME zero padding,
  ordered (kh, kw, c) like a flattened HWIO kernel."""
  kh, kw = kernel_size
  h, w = x.shape[1:3]
  x = jnp.pad(x, ((0, 0), _same_padding(kh), _same_padding(kw), (0, 0)))
  shifted = [x[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)]
  return jnp.concatenate(shifted, axis=-1)


def _lax_convolve(x: Array, kernel: Array, strides: Tuple[int, int]) -> Array:
  return jax.lax.conv_general_dilated(
      x, kernel, strides, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _convolve(x: Array, kernel: Array, strides: Tuple[int, int]) -> Array:
  """SAME convolution, NHWC x HWIO -> NHWC (see `Conv`)."""
  if x.shape[-1] <= PATCH_MATMUL_MAX_CHANNELS and strides == (1, 1):
    return _patches(x, kernel.shape[:2]) @ kernel.reshape(-1, kernel.shape[-1])
  return _lax_convolve(x, kernel, strides)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def convolve(x: Array, kernel: Array, strides: Tuple[int, int]) -> Array:
  """SAME 2-D convolution `[b, h, w, c]` x `[kh, kw, c, o]` -> `[b, h', w', o]`
  whose backward pass first materialises the output cotangent.

  Without that barrier XLA:CPU fuses the producer of the cotangent (e.g. the
  backward pass of the max-pool or GroupNorm that follows) into the operand
  of the gradient convolutions and recomputes it inside their inner loops:
  measured 3x slower for the av_digits first audio block. The gradients
  are XLA's own (`lax.conv_general_dilated`'s), for the kernel in every
  case: with the barrier in place, XLA's kernel gradient made the av_digits
  step 15% faster (1 and 8 CPU devices) than one matmul of 3x3 patches,
  the formulation used before the barrier existed (benchmarks/RESULTS.md).
  """
  return _convolve(x, kernel, strides)


def _convolve_fwd(x, kernel, strides):
  return _convolve(x, kernel, strides), (x, kernel)


def _convolve_bwd(strides, residuals, dy):
  x, kernel = residuals
  dy = jax.lax.optimization_barrier(dy)
  _, input_vjp = jax.vjp(lambda a: _convolve(a, kernel, strides), x)
  _, kernel_vjp = jax.vjp(lambda k: _lax_convolve(x, k, strides), kernel)
  return input_vjp(dy)[0], kernel_vjp(dy)[0]


convolve.defvjp(_convolve_fwd, _convolve_bwd)


class Conv(nn.Module):
  """2-D convolution over `[batch, height, width, channels]`, NHWC / HWIO.

  The parameters and results of `flax.linen.Conv(features, kernel_size,
  strides, padding="SAME", use_bias)`: `kernel` `[kh, kw, in, features]`
  (LeCun normal) and optional `bias` `[features]` (zeros). A stride-1
  convolution of an input with at most `PATCH_MATMUL_MAX_CHANNELS` channels
  runs as a patches matmul, every other one as `lax.conv_general_dilated`.

  Attributes:
    features: output channels.
    kernel_size: (height, width) of the kernel.
    strides: (height, width) strides.
    use_bias: add a learned bias.
  """
  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """`[batch, h, w, c]` -> `[batch, ceil(h / sh), ceil(w / sw), features]`,
    in the dtype of `x` and the kernel promoted together.

    Raises:
      ValueError: if `x` is not rank 4.
    """
    if x.ndim != 4:
      raise ValueError(f"Conv expects [batch, height, width, channels], got "
                       f"shape {x.shape}")
    kernel_size = tuple(self.kernel_size)
    strides = tuple(self.strides)
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*kernel_size, x.shape[-1], self.features))
    x, kernel = nn.dtypes.promote_dtype(x, kernel)
    y = convolve(x, kernel, strides)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros_init(),
                         (self.features,)).astype(y.dtype)
    return y


class GroupNorm(nn.Module):
  """Group normalisation (Wu and He 2018, "Group Normalization") over
  `[batch, ..., channels]`.

  The parameters and results of `flax.linen.GroupNorm(num_groups,
  epsilon=1e-6)`: statistics over every non-batch axis and the channels of
  a group, biased variance E[x^2] - E[x]^2, learned `scale` (ones) and
  `bias` (zeros) per channel. Statistics are computed in float32 as sums
  per channel first, then per group, which XLA fuses into one pass; outputs
  are in the dtype of `x`.

  Attributes:
    num_groups: groups; must divide the channel count.
    epsilon: added to the variance.
  """
  num_groups: int = 32
  epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """`[batch, ..., channels]` -> same shape and dtype.

    Raises:
      ValueError: if `num_groups` does not divide the channel count.
    """
    channels = x.shape[-1]
    if self.num_groups <= 0 or channels % self.num_groups:
      raise ValueError(f"GroupNorm: num_groups={self.num_groups} does not "
                       f"divide the {channels} channels")
    group_size = channels // self.num_groups
    axes = tuple(range(1, x.ndim - 1))
    count = group_size
    for a in axes:
      count *= x.shape[a]
    x32 = x.astype(jnp.float32)
    per_group = lambda s: s.reshape(x.shape[0], self.num_groups,
                                    group_size).sum(-1)
    mean = per_group(x32.sum(axes)) / count
    mean_sq = per_group(jnp.square(x32).sum(axes)) / count
    var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)
    per_channel = lambda g: jnp.repeat(g, group_size, axis=-1).reshape(
        (x.shape[0],) + (1,) * len(axes) + (channels,))
    scale = self.param("scale", nn.initializers.ones_init(), (channels,))
    bias = self.param("bias", nn.initializers.zeros_init(), (channels,))
    inv = per_channel(jax.lax.rsqrt(var + self.epsilon)) * scale
    y = (x32 - per_channel(mean)) * inv + bias
    return y.astype(x.dtype)


def _window_view(x: Array, window: Tuple[int, int]) -> Array:
  """`[b, h, w, c]` -> `[b, h // wh, wh, w // ww, ww, c]`, edges cropped."""
  wh, ww = window
  b, h, w, c = x.shape
  return x[:, :h - h % wh, :w - w % ww].reshape(b, h // wh, wh, w // ww, ww, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool(x: Array, window: Tuple[int, int]) -> Array:
  """Non-overlapping max-pooling (stride = window, VALID padding).

  The result and gradient of `flax.linen.max_pool(x, window,
  strides=window)`: the gradient of each window goes to its first maximum
  in row-major order, as XLA's select-and-scatter does. The forward pass is
  a reshape and a max over the window axes and the backward pass elementwise
  selects, with no select-and-scatter or reduction; measured 4-5x faster
  forward + backward on XLA:CPU (benchmarks/RESULTS.md).

  Args:
    x: `[batch, height, width, channels]`.
    window: (height, width) of the window, also the stride.

  Returns:
    `[batch, height // wh, width // ww, channels]`; rows and columns left
    over at the bottom and right edges are dropped (VALID).
  """
  return _window_view(x, tuple(window)).max(axis=(2, 4))


def _max_pool_fwd(x, window):
  y = max_pool(x, window)
  return y, (x, y)


def _max_pool_bwd(window, residuals, dy):
  x, y = residuals
  wh, ww = window
  view = _window_view(x, tuple(window))
  taken = jnp.zeros(y.shape, bool)
  rows = []
  for i in range(wh):
    cols = []
    for j in range(ww):
      first = jnp.logical_and(view[:, :, i, :, j] == y, ~taken)
      taken = jnp.logical_or(taken, first)
      cols.append(jnp.where(first, dy, 0).astype(dy.dtype))
    rows.append(jnp.stack(cols, axis=3))  # [b, h', w', ww, c]
  dx = jnp.stack(rows, axis=2).reshape(
      x.shape[0], view.shape[1] * wh, view.shape[3] * ww, x.shape[3])
  h, w = x.shape[1:3]
  return (jnp.pad(dx, ((0, 0), (0, h - dx.shape[1]), (0, w - dx.shape[2]),
                       (0, 0))),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
