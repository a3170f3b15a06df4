"""On a GPU: a bf16 clip_b16 step, cuDNN attention against XLA's, and
mmjax's convolution layers against flax's (`pytest -m gpu tests/gpu`).

Skipped without a GPU backend (tests/gpu/conftest.py). The tolerances were
not measured on a GPU when written (no GPU was lent, 2026-12-06); each
states what it is derived from.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import clip_b16
from mmjax import objectives, parallel
from mmjax.models.layers import conv
from mmjax.train import optim, steps
from mmjax.train.state import create_train_state
from tests.test_realsize import example_inputs

pytestmark = pytest.mark.gpu


def test_clip_b16_bfloat16_step_runs():
  """Full-size clip_b16 in bfloat16, batch 8: two steps, finite losses,
  parameters moved and still float32."""
  config = clip_b16.get_config()
  with config.unlocked():
    config.dtype = "bfloat16"
    config.batch_size = 8
    config.optimizer.warmup_steps = 1
  mesh = parallel.make_mesh()
  objective = objectives.resolve(config)
  model = objective.build_model(config)
  inputs = example_inputs(config, config.batch_size)
  rng = np.random.default_rng(0)
  inputs["image"] = rng.uniform(0, 1, inputs["image"].shape).astype(np.float32)
  inputs["text"]["token_ids"] = rng.integers(
      1, 8000, inputs["text"]["token_ids"].shape).astype(np.int32)
  batch = {**inputs, "label": np.zeros(config.batch_size, np.int32)}
  tx = optim.make_optimizer(config.optimizer, config.num_train_steps)
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                        inputs)
  state = create_train_state(model, shapes, tx, config.seed,
                             parallel.replicated(mesh))
  before = jax.device_get(state.params["image_projection"]["kernel"])
  step = steps.make_train_step_from_config(
      mesh, config, objective,
      optim.learning_rate_schedule(config.optimizer, config.num_train_steps))
  for _ in range(2):
    state, metrics = step(state, parallel.to_global(batch, mesh))
    assert np.isfinite(float(metrics["loss"]))
  after = jax.device_get(state.params["image_projection"]["kernel"])
  assert after.dtype == np.float32
  assert np.abs(after - before).max() > 0


# [batch, tokens, heads, head_dim]: ViT-B/16's (197 tokens, 12 x 64) and
# CLIP's text (77 tokens, 8 x 64).
ATTENTION_SHAPES = [(4, 197, 12, 64), (4, 77, 8, 64)]


@pytest.mark.parametrize("shape", ATTENTION_SHAPES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_cudnn_attention_equals_xla_in_bfloat16(shape, is_causal):
  """`jax.nn.dot_product_attention` with implementation "cudnn" (fused
  flash attention) against "xla", bfloat16 inputs, outputs and input
  gradients, with and without a causal mask and with padded keys.

  Both are compared to a float32 reference: cuDNN's error may be at most
  twice XLA's plus 2 bf16 ulps at the output's scale (2 * 2^-8): the two
  round and accumulate differently, neither is exact."""
  b, t, n, h = shape
  keys = jax.random.split(jax.random.key(0), 4)
  q, k, v, dy = (jax.random.normal(key, shape, jnp.float32) for key in keys)
  lengths = jnp.array([t, t - 5, t // 2, 1], jnp.int32)[:b]

  def attend(implementation, dtype):
    def f(q, k, v):
      return jax.nn.dot_product_attention(
          q.astype(dtype), k.astype(dtype), v.astype(dtype),
          is_causal=is_causal, key_value_seq_lengths=lengths,
          implementation=implementation).astype(jnp.float32)
    y, vjp = jax.vjp(jax.jit(f), q, k, v)
    return (y, *vjp(dy))

  reference = attend("xla", jnp.float32)
  xla = attend("xla", jnp.bfloat16)
  cudnn = attend("cudnn", jnp.bfloat16)
  for name, r, x, c in zip(("out", "dq", "dk", "dv"), reference, xla, cudnn):
    scale = float(jnp.abs(r).max())
    xla_error = float(jnp.abs(x - r).max())
    cudnn_error = float(jnp.abs(c - r).max())
    assert cudnn_error <= 2 * xla_error + 2 * 2.0**-8 * scale, (
        name, cudnn_error, xla_error, scale)


# Relative to the largest magnitude, at "highest" matmul precision (no TF32):
# the CPU tests' bound (tests/models/layers/test_conv.py, measured 1.3e-6).
RTOL = 1e-5


def _close(actual, expected):
  scale = float(jnp.abs(expected).max()) or 1.0
  err = float(jnp.abs(actual - expected).max()) / scale
  assert err <= RTOL, f"max relative error {err:.2e} > {RTOL}"


def _values_and_grads(f, params, x):
  loss = lambda p, x: jnp.sum(jnp.sin(f(p, x)) * x.mean())
  return (jax.jit(f)(params, x),
          *jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x))


# (input shape, features, strides): av_digits' first conv (1 channel) and a
# ResNet-50 stem and bottleneck 3 x 3 (Conv on 3 and 64 channels).
CONV_CASES = [((32, 28, 28, 1), 16, (1, 1), (3, 3)),
              ((8, 224, 224, 3), 64, (2, 2), (7, 7)),
              ((8, 56, 56, 64), 64, (1, 1), (3, 3)),
              ((8, 56, 56, 3), 16, (1, 1), (3, 3))]


@pytest.mark.parametrize("shape,features,strides,kernel_size", CONV_CASES)
def test_conv_layers_equal_flax_on_gpu(shape, features, strides, kernel_size):
  x = jax.random.normal(jax.random.key(1), shape)
  kwargs = dict(features=features, kernel_size=kernel_size, strides=strides)
  ours, reference = conv.Conv(**kwargs), nn.Conv(**kwargs, padding="SAME")
  params = reference.init(jax.random.key(0), x)
  with jax.default_matmul_precision("highest"):
    for a, b in zip(_values_and_grads(ours.apply, params, x),
                    _values_and_grads(reference.apply, params, x)):
      for u, w in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        _close(u, w)


@pytest.mark.parametrize("shape,num_groups", [((32, 28, 28, 16), 8),
                                              ((8, 56, 56, 256), 32)])
def test_group_norm_and_max_pool_equal_flax_on_gpu(shape, num_groups):
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(2), shape)
  ours, reference = (conv.GroupNorm(num_groups=num_groups),
                     nn.GroupNorm(num_groups=num_groups))
  params = reference.init(jax.random.key(0), x)
  with jax.default_matmul_precision("highest"):  # group sums may be matmuls
    for a, b in zip(_values_and_grads(ours.apply, params, x),
                    _values_and_grads(reference.apply, params, x)):
      for u, w in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        _close(u, w)
  y, our_vjp = jax.vjp(lambda x: conv.max_pool(x, (2, 2)), x)
  y_ref, ref_vjp = jax.vjp(lambda x: nn.max_pool(x, (2, 2), (2, 2)), x)
  np.testing.assert_array_equal(y, y_ref)
  dy = jax.random.normal(jax.random.key(3), y.shape)
  np.testing.assert_array_equal(our_vjp(dy)[0], ref_vjp(dy)[0])
