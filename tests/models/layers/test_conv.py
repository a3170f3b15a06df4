"""mmjax.models.layers.conv against the flax.linen layers it replaces:
same parameters, outputs and gradients (float32), in the formulation of
XLA:CPU and in that of the other backends (`backend.platform`
monkeypatched: every test runs for both)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.layers import backend, conv

# Relative to the largest magnitude of each compared array. Measured max
# 1.3e-6 (outputs and gradients, jax 0.10.2 CPU): the two compute the same
# sums in a different order.
RTOL = 1e-5


@pytest.fixture(autouse=True, params=["cpu", "gpu"])
def platform(request, monkeypatch):
  """The backend the layers are traced for."""
  monkeypatch.setattr(backend, "platform", lambda: request.param)
  return request.param


def _close(actual, expected):
  scale = float(jnp.abs(expected).max()) or 1.0
  err = float(jnp.abs(actual - expected).max()) / scale
  assert err <= RTOL, f"max relative error {err:.2e} > {RTOL}"


def _compare(ours: nn.Module, reference: nn.Module, x: jnp.ndarray,
             perturb: bool = False):
  """Same initial parameters; same outputs and gradients for a non-linear
  loss (the cotangent is not uniform). `perturb` adds noise to the
  parameters first (e.g. so that a scale is not all ones)."""
  params = reference.init(jax.random.key(0), x)
  ours_params = ours.init(jax.random.key(0), x)
  assert jax.tree.structure(params) == jax.tree.structure(ours_params)
  for a, b in zip(jax.tree.leaves(ours_params), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  if perturb:
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(5), len(leaves))
    params = jax.tree.unflatten(tree, [
        p + 0.5 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])

  def loss(module):
    return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)) * x.mean())

  _close(ours.apply(params, x), reference.apply(params, x))
  ours_grads = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x)
  ref_grads = jax.jit(jax.grad(loss(reference), argnums=(0, 1)))(params, x)
  for a, b in zip(jax.tree.leaves(ours_grads), jax.tree.leaves(ref_grads)):
    _close(a, b)


@pytest.mark.parametrize("channels,kernel_size,strides,use_bias", [
    (1, (3, 3), (1, 1), False),  # shifted-sum forward
    (3, (3, 3), (1, 1), True),
    (8, (3, 3), (1, 1), False),  # lax.conv forward
    (8, (3, 3), (2, 2), True),  # strided: XLA's own backward
    (1, (3, 3), (2, 2), False),
    (8, (1, 1), (1, 1), True),
    (8, (1, 1), (2, 2), False),
    (3, (2, 2), (1, 1), False),  # even kernel: asymmetric SAME padding
])
def test_conv_matches_flax(channels, kernel_size, strides, use_bias):
  x = jax.random.normal(jax.random.key(1), (2, 7, 6, channels))
  kwargs = dict(features=5, kernel_size=kernel_size, strides=strides,
                use_bias=use_bias)
  _compare(conv.Conv(**kwargs),
           nn.Conv(**kwargs, padding="SAME"), x)


def test_conv_rejects_rank_3():
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    conv.Conv(4).init(jax.random.key(0), jnp.zeros((2, 5, 3)))


@pytest.mark.parametrize("shape,num_groups", [
    ((2, 5, 7, 8), 4), ((2, 5, 7, 16), 8), ((2, 5, 6), 3), ((3, 4, 4, 4), 4)])
@pytest.mark.parametrize("perturb", [False, True])
def test_group_norm_matches_flax(shape, num_groups, perturb):
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(2), shape)
  _compare(conv.GroupNorm(num_groups=num_groups),
           nn.GroupNorm(num_groups=num_groups), x, perturb=perturb)


def test_group_norm_bfloat16_input_keeps_float32_parameter_gradients():
  x = (3.0 + 2.0 * jax.random.normal(jax.random.key(2), (2, 5, 7, 8))).astype(
      jnp.bfloat16)
  module = conv.GroupNorm(num_groups=4)
  params = module.init(jax.random.key(0), x)
  y = module.apply(params, x)
  grads, dx = jax.grad(
      lambda p, x: jnp.sum(jnp.sin(module.apply(p, x).astype(jnp.float32))),
      argnums=(0, 1))(params, x)
  assert y.dtype == dx.dtype == jnp.bfloat16
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
  # The same as float32 input up to rounding the output to bfloat16
  # (statistics in float32): half an ulp is 7.8e-3 for |y| < 4 (here
  # |y| < 3); measured 7.5e-3 (jax 0.10.2, CPU).
  y32 = module.apply(params, x.astype(jnp.float32))
  np.testing.assert_allclose(y.astype(jnp.float32), y32, atol=1e-2)


def test_group_norm_rejects_indivisible_channels():
  with pytest.raises(ValueError, match="num_groups=3 does not divide the 8"):
    conv.GroupNorm(num_groups=3).init(jax.random.key(0), jnp.zeros((1, 4, 8)))


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (2, 7, 9, 2), (1, 3, 3, 1)])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_matches_flax_values_and_gradient(shape, ties):
  """Exactly equal, ties included: the gradient goes to the first maximum
  of each window, as flax's select-and-scatter does."""
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  if ties:
    x = np.round(x)
  x = jnp.asarray(x)
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  y, ref_vjp = jax.vjp(reference, x)
  ours, our_vjp = jax.vjp(lambda x: conv.max_pool(x, (2, 2)), x)
  np.testing.assert_array_equal(ours, y)
  dy = jnp.asarray(np.random.default_rng(1).normal(size=y.shape), jnp.float32)
  np.testing.assert_array_equal(our_vjp(dy)[0], ref_vjp(dy)[0])


def test_max_pool_other_window():
  x = jax.random.normal(jax.random.key(3), (2, 9, 7, 2))
  np.testing.assert_array_equal(
      conv.max_pool(x, (3, 2)), nn.max_pool(x, (3, 2), strides=(3, 2)))
  grad = jax.grad(lambda x: jnp.sum(conv.max_pool(x, (3, 2)) ** 2))(x)
  ref = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (3, 2), (3, 2)) ** 2))(x)
  np.testing.assert_array_equal(grad, ref)


def _primitives(fn, *args):
  return {str(e.primitive) for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns}


def test_each_backend_traces_its_own_formulation(platform):
  """XLA:CPU: the custom-VJP formulations (the shifted-sum forward of a
  1-channel conv has no convolution); other backends: lax's convolution and
  reduce_window max-pooling, no custom VJP."""
  x = jnp.ones((1, 4, 4, 1))
  module = nn.Sequential([conv.Conv(2), conv.GroupNorm(num_groups=2),
                          lambda y: conv.max_pool(y, (2, 2))])
  params = module.init(jax.random.key(0), x)
  used = _primitives(lambda p: module.apply(p, x), params)
  if platform == "cpu":
    assert "custom_vjp_call" in used and "conv_general_dilated" not in used
    assert "reduce_window_max" not in used
  else:
    assert "custom_vjp_call" not in used
    assert {"conv_general_dilated", "reduce_window_max"} <= used
