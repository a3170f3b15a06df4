"""Convolution, GroupNorm and max-pooling, with a formulation per backend.

Each is a drop-in replacement for its flax.linen / lax counterpart: same
parameters (names, shapes, initialisers) on every backend, so checkpoints
move between backends, and the same outputs and gradients up to float32
rounding.

On XLA:CPU (`backend.platform() == "cpu"`, read at trace time) they run
in formulations that XLA:CPU compiles well, because `reduce_window`
max-pooling's backward pass (select-and-scatter), flax GroupNorm's
reductions over a `[..., groups, group_size]` view, and convolutions of
inputs with one or a few channels were the largest costs of the av_digits
train step on XLA:CPU after the convolutions proper (benchmarks/RESULTS.md,
"Where the av_digits train step's time goes"; the timings behind each
choice below are in its section "Notes moved out of code"). Those timings
are XLA:CPU's only: no GPU or TPU measurement of these formulations
exists, so every other backend runs the plain ones the libraries provide
(`lax.conv_general_dilated`, flax `GroupNorm`'s math, `nn.max_pool`, each
differentiated by JAX).
"""

import functools
from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmjax.models.layers import backend

Array = jax.Array


def _on_cpu() -> bool:
  """Whether the layers are traced for XLA:CPU (the CPU formulations)."""
  return backend.platform() == "cpu"


# The forward pass of a stride-1 convolution of an input with one of these
# channel counts (mono spectrograms and grey images, RGB images) is a sum of
# shifted copies of each input channel times a row of the kernel
# (`_shifted_sum`), which XLA compiles to one elementwise loop: faster on
# XLA:CPU than XLA's convolution for 1 and 3 channels, slower for 2 and 4
# (timings: benchmarks/RESULTS.md, "Notes moved out of code").
SHIFTED_SUM_CHANNELS = (1, 3)


def _same_padding(size: int) -> Tuple[int, int]:
  return (size - 1) // 2, size // 2


def _shifted_sum(x: Array, kernel: Array) -> Array:
  """SAME stride-1 convolution `[b, h, w, c]` x `[kh, kw, c, o]` ->
  `[b, h, w, o]` as the sum over taps and input channels of the shifted
  channel `[b, h, w, 1]` times the kernel row `[o]`."""
  kh, kw, c, _ = kernel.shape
  h, w = x.shape[1:3]
  x = jnp.pad(x, ((0, 0), _same_padding(kh), _same_padding(kw), (0, 0)))
  y = None
  for i in range(kh):
    for j in range(kw):
      for ch in range(c):
        term = x[:, i:i + h, j:j + w, ch:ch + 1] * kernel[i, j, ch]
        y = term if y is None else y + term
  return y


def _lax_convolve(x: Array, kernel: Array, strides: Tuple[int, int]) -> Array:
  return jax.lax.conv_general_dilated(
      x, kernel, strides, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _convolve(x: Array, kernel: Array, strides: Tuple[int, int]) -> Array:
  """SAME convolution, NHWC x HWIO -> NHWC (see `Conv`)."""
  if x.shape[-1] in SHIFTED_SUM_CHANNELS and strides == (1, 1):
    return _shifted_sum(x, kernel)
  return _lax_convolve(x, kernel, strides)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def convolve(x: Array, kernel: Array, strides: Tuple[int, int]) -> Array:
  """SAME 2-D convolution `[b, h, w, c]` x `[kh, kw, c, o]` -> `[b, h', w', o]`
  whose backward pass first materialises the output cotangent (the XLA:CPU
  formulation of `Conv`).

  Without that barrier XLA:CPU fuses the producer of the cotangent (e.g. the
  backward pass of the max-pool or GroupNorm that follows) into the operand
  of the gradient convolutions and recomputes it inside their inner loops.
  Both gradients are XLA's own (`lax.conv_general_dilated`'s), whatever
  formulation the forward pass has, because they were faster than a matmul
  of 3x3 patches and than JAX's derivative of `_shifted_sum` (timings:
  benchmarks/RESULTS.md, "Notes moved out of code").

  Args:
    x: float `[b, h, w, c]` (NHWC).
    kernel: float `[kh, kw, c, o]` (HWIO), same dtype as `x`.
    strides: (height, width) strides, static.

  Returns:
    `[b, ceil(h / sh), ceil(w / sw), o]` in the dtype of `x`.
  """
  return _convolve(x, kernel, strides)


def _convolve_fwd(x, kernel, strides):
  return _convolve(x, kernel, strides), (x, kernel)


def _convolve_bwd(strides, residuals, dy):
  x, kernel = residuals
  dy = jax.lax.optimization_barrier(dy)
  _, vjp = jax.vjp(lambda a, k: _lax_convolve(a, k, strides), x, kernel)
  return vjp(dy)


convolve.defvjp(_convolve_fwd, _convolve_bwd)


class Conv(nn.Module):
  """2-D convolution over `[batch, height, width, channels]`, NHWC / HWIO.

  The parameters and results of `flax.linen.Conv(features, kernel_size,
  strides, padding="SAME", use_bias)`: `kernel` `[kh, kw, in, features]`
  (LeCun normal) and optional `bias` `[features]` (zeros). On XLA:CPU it
  is `convolve`: a stride-1 convolution of an input with 1 or 3 channels
  (`SHIFTED_SUM_CHANNELS`) runs as a sum of shifted inputs times kernel
  rows (one elementwise loop), every other one as
  `lax.conv_general_dilated`, with a cotangent barrier in the backward
  pass; on other backends it is `lax.conv_general_dilated` differentiated
  by JAX.

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
    if _on_cpu():
      y = convolve(x, kernel, strides)
    else:
      y = _lax_convolve(x, kernel, strides)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros_init(),
                         (self.features,)).astype(y.dtype)
    return y


def _group_sums(per_channel_sums: Array, num_groups: int) -> Array:
  """`[batch, channels]` -> `[batch, groups]`, summing each group's channels."""
  b, c = per_channel_sums.shape
  return per_channel_sums.reshape(b, num_groups, c // num_groups).sum(-1)


def _to_channels(per_group: Array, like: Array) -> Array:
  """`[batch, groups]` -> `[batch, 1, ..., 1, channels]`, broadcastable to
  `like`."""
  channels = like.shape[-1]
  repeated = jnp.repeat(per_group, channels // per_group.shape[-1], axis=-1)
  return repeated.reshape((like.shape[0],) + (1,) * (like.ndim - 2) +
                          (channels,))


def _group_count(shape: Tuple[int, ...], num_groups: int) -> int:
  """Elements of one (example, group) of a `[batch, ..., channels]` array."""
  count = shape[-1] // num_groups
  for size in shape[1:-1]:
    count *= size
  return count


def _group_statistics(x32: Array, num_groups: int):
  """Per (example, group) mean and biased variance, `[batch, groups]`, of
  `x32` `[batch, ..., channels]` (float32)."""
  axes = tuple(range(1, x32.ndim - 1))
  count = _group_count(x32.shape, num_groups)
  mean = _group_sums(x32.sum(axes), num_groups) / count
  mean_sq = _group_sums(jnp.square(x32).sum(axes), num_groups) / count
  return mean, jnp.maximum(mean_sq - jnp.square(mean), 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def group_norm(x: Array, scale: Array, bias: Array, num_groups: int,
               epsilon: float) -> Array:
  """Group normalisation (Wu and He 2018) of `x` `[batch, ..., channels]`
  with per-channel `scale` and `bias` `[channels]` (see `GroupNorm`); same
  shape and dtype as `x`, statistics in float32. The XLA:CPU formulation
  of `GroupNorm`; `group_norm_grouped` is the one of other backends.

  The backward pass is the closed form: one pass over `x` and the
  cotangent for the per-channel sums sum(dy) and sum(dy * x), one
  elementwise pass for the input gradient, where JAX's derivative of the
  forward pass made XLA:CPU emit several more passes (timings:
  benchmarks/RESULTS.md, "Notes moved out of code").

  Args:
    x: `[batch, ..., channels]`, any float dtype.
    scale, bias: `[channels]` (float32 parameters).
    num_groups: must divide `channels` (not checked here; see `GroupNorm`).
    epsilon: added to the variance.
  """
  return _group_norm_fwd(x, scale, bias, num_groups, epsilon)[0]


def _group_norm_fwd(x, scale, bias, num_groups, epsilon):
  x32 = x.astype(jnp.float32)
  mean, var = _group_statistics(x32, num_groups)
  inv_std = jax.lax.rsqrt(var + epsilon)
  y = ((x32 - _to_channels(mean, x)) * (_to_channels(inv_std, x) * scale)
       + bias)
  return y.astype(x.dtype), (x, mean, inv_std, scale)


def _group_norm_bwd(num_groups, epsilon, residuals, dy):
  del epsilon
  x, mean, inv_std, scale = residuals
  axes = tuple(range(1, x.ndim - 1))
  x32, dy32 = x.astype(jnp.float32), dy.astype(jnp.float32)
  sum_dy = dy32.sum(axes)  # [batch, channels]
  sum_dy_x = (dy32 * x32).sum(axes)
  group_size = x.shape[-1] // num_groups
  mean_c = jnp.repeat(mean, group_size, axis=-1)
  inv_std_c = jnp.repeat(inv_std, group_size, axis=-1)
  sum_dy_xhat = inv_std_c * (sum_dy_x - mean_c * sum_dy)
  count = _group_count(x.shape, num_groups)
  mean_g = _group_sums(scale * sum_dy, num_groups) / count
  mean_g_xhat = _group_sums(scale * sum_dy_xhat, num_groups) / count
  xhat = (x32 - _to_channels(mean, x)) * _to_channels(inv_std, x)
  dx = _to_channels(inv_std, x) * (dy32 * scale - _to_channels(mean_g, x)
                                   - xhat * _to_channels(mean_g_xhat, x))
  return (dx.astype(x.dtype), sum_dy_xhat.sum(0).astype(scale.dtype),
          sum_dy.sum(0).astype(scale.dtype))


group_norm.defvjp(_group_norm_fwd, _group_norm_bwd)


def group_norm_grouped(x: Array, scale: Array, bias: Array, num_groups: int,
                       epsilon: float) -> Array:
  """`group_norm` in the formulation of `flax.linen.GroupNorm`: statistics
  (float32, E[x^2] - E[x]^2) over a `[batch, ..., groups, group_size]`
  view, differentiated by JAX. Same arguments, shape and dtype as
  `group_norm`; the formulation of every backend but XLA:CPU."""
  x32 = x.astype(jnp.float32)
  grouped = x32.reshape(x.shape[:-1] + (num_groups, x.shape[-1] // num_groups))
  axes = tuple(range(1, grouped.ndim - 2)) + (grouped.ndim - 1,)
  mean = grouped.mean(axes, keepdims=True)
  var = jnp.maximum(
      jnp.square(grouped).mean(axes, keepdims=True) - jnp.square(mean), 0.0)
  y = ((grouped - mean) * jax.lax.rsqrt(var + epsilon)).reshape(x.shape)
  return (y * scale + bias).astype(x.dtype)


class GroupNorm(nn.Module):
  """Group normalisation (Wu and He 2018, "Group Normalization") over
  `[batch, ..., channels]`.

  The parameters and results of `flax.linen.GroupNorm(num_groups,
  epsilon=1e-6)`: statistics over every non-batch axis and the channels of
  a group, biased variance E[x^2] - E[x]^2, learned `scale` (ones) and
  `bias` (zeros) per channel. Statistics are computed in float32 as sums
  per channel first, then per group, which XLA fuses into one pass, with
  `group_norm`'s closed-form gradient on XLA:CPU, and as flax computes
  them (`group_norm_grouped`) on other backends; outputs are in the dtype
  of `x`.

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
    scale = self.param("scale", nn.initializers.ones_init(), (channels,))
    bias = self.param("bias", nn.initializers.zeros_init(), (channels,))
    norm = group_norm if _on_cpu() else group_norm_grouped
    return norm(x, scale, bias, self.num_groups, self.epsilon)


def _window_view(x: Array, window: Tuple[int, int]) -> Array:
  """`[b, h, w, c]` -> `[b, h // wh, wh, w // ww, ww, c]`, edges cropped."""
  wh, ww = window
  b, h, w, c = x.shape
  return x[:, :h - h % wh, :w - w % ww].reshape(b, h // wh, wh, w // ww, ww, c)


def max_pool(x: Array, window: Tuple[int, int]) -> Array:
  """Non-overlapping max-pooling (stride = window, VALID padding).

  The result and gradient of `flax.linen.max_pool(x, window,
  strides=window)`: the gradient of each window goes to its first maximum
  in row-major order, as XLA's select-and-scatter does. On XLA:CPU it is
  `max_pool_windows`, elsewhere `nn.max_pool` itself.

  Args:
    x: `[batch, height, width, channels]`.
    window: (height, width) of the window, also the stride.

  Returns:
    `[batch, height // wh, width // ww, channels]`; rows and columns left
    over at the bottom and right edges are dropped (VALID).
  """
  window = tuple(window)
  if _on_cpu():
    return max_pool_windows(x, window)
  return nn.max_pool(x, window, strides=window)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool_windows(x: Array, window: Tuple[int, int]) -> Array:
  """`max_pool` (same arguments and result) as a reshape and a max over
  the window axes, whose backward pass is elementwise selects, with no
  select-and-scatter or reduction, which XLA:CPU runs faster (timings:
  benchmarks/RESULTS.md, "Notes moved out of code")."""
  return _window_view(x, tuple(window)).max(axis=(2, 4))


def _max_pool_fwd(x, window):
  y = max_pool_windows(x, window)
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


max_pool_windows.defvjp(_max_pool_fwd, _max_pool_bwd)
