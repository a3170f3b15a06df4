import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.layers import attention

X = jax.random.normal(jax.random.key(0), (2, 4, 8))  # queries [B, T, D]
CONTEXT = jax.random.normal(jax.random.key(1), (2, 6, 5))  # [B, S, Dc]
CONTEXT_MASK = jnp.array([[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]], bool)


def einsum_attention(params, query, context, mask, num_heads):
  """Reference multi-head attention written out with einsum and softmax."""
  def project(p, x):
    return jnp.einsum("bsd,dnh->bsnh", x, p["kernel"]) + p["bias"]
  q = project(params["query"], query)
  k = project(params["key"], context)
  v = project(params["value"], context)
  logits = jnp.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
  logits = jnp.where(mask[:, None, None, :], logits, -jnp.inf)
  weights = jax.nn.softmax(logits, axis=-1)
  out = jnp.einsum("bnts,bsnh->btnh", weights, v)
  return (jnp.einsum("btnh,nhd->btd", out, params["out"]["kernel"])
          + params["out"]["bias"]), weights


def test_cross_attention_matches_einsum_reference():
  layer = attention.MultiHeadAttention(num_heads=2)
  variables = layer.init(jax.random.key(2), X, CONTEXT, CONTEXT_MASK)
  out, state = layer.apply(variables, X, CONTEXT, CONTEXT_MASK,
                           mutable=["intermediates"])
  expected, weights = einsum_attention(variables["params"], X, CONTEXT,
                                       CONTEXT_MASK, 2)
  assert out.shape == (2, 4, 8)
  np.testing.assert_allclose(out, expected, atol=1e-5)
  sown = state["intermediates"]["attention_weights"][0]
  assert sown.shape == (2, 2, 4, 6)  # [B, N, T queries, S keys]
  np.testing.assert_allclose(sown, weights, atol=1e-6)


def test_masked_keys_are_ignored_and_no_valid_key_gives_zeros():
  layer = attention.MultiHeadAttention(num_heads=2)
  variables = layer.init(jax.random.key(2), X, CONTEXT, CONTEXT_MASK)
  ref = layer.apply(variables, X, CONTEXT, CONTEXT_MASK)
  poisoned = jnp.where(CONTEXT_MASK[..., None], CONTEXT, jnp.nan)
  out = layer.apply(variables, X, poisoned, CONTEXT_MASK)
  np.testing.assert_allclose(out, ref, atol=1e-6)
  # No valid key: the attention output is 0, so only the output bias remains.
  none = jnp.zeros_like(CONTEXT_MASK)
  out = layer.apply(variables, X, CONTEXT, none)
  np.testing.assert_allclose(
      out, jnp.broadcast_to(variables["params"]["out"]["bias"], out.shape),
      atol=1e-6)


def test_self_attention_defaults_and_head_divisibility():
  layer = attention.MultiHeadAttention(num_heads=2)
  variables = layer.init(jax.random.key(2), X)
  expected, _ = einsum_attention(variables["params"], X, X,
                                 jnp.ones((2, 4), bool), 2)
  np.testing.assert_allclose(layer.apply(variables, X), expected, atol=1e-5)
  with pytest.raises(ValueError, match="not divisible by num_heads=3"):
    attention.MultiHeadAttention(num_heads=3).init(jax.random.key(0), X)


def test_sinusoidal_embedding_values():
  pe = attention.sinusoidal_positional_embedding(5, 4)
  assert pe.shape == (5, 4)
  # timescales 1 and 10000 for dim 4: [sin(p), sin(p/1e4), cos(p), cos(p/1e4)]
  p = np.arange(5)
  np.testing.assert_allclose(pe[:, 0], np.sin(p), atol=1e-6)
  np.testing.assert_allclose(pe[:, 1], np.sin(p / 1e4), atol=1e-6)
  np.testing.assert_allclose(pe[:, 2], np.cos(p), atol=1e-6)
  with pytest.raises(ValueError, match="even dim"):
    attention.sinusoidal_positional_embedding(5, 3)


@pytest.mark.parametrize("kind", ["learned", "sinusoidal"])
def test_positional_embedding_kinds(kind):
  layer = attention.AddPositionalEmbedding(kind)
  variables = layer.init(jax.random.key(0), X)
  out = layer.apply(variables, X)
  assert out.shape == X.shape and not np.allclose(out, X)
  assert bool(variables) == (kind == "learned")


def test_transformer_block_is_pre_layernorm_residual_with_context():
  block = attention.TransformerBlock(num_heads=2, mlp_dim=16)
  variables = block.init(jax.random.key(0), X, context=CONTEXT,
                         context_mask=CONTEXT_MASK, train=False)
  assert {"attention_norm", "context_norm", "attention", "mlp_norm", "mlp"} == set(
      variables["params"])
  out = block.apply(variables, X, context=CONTEXT, context_mask=CONTEXT_MASK,
                    train=False)
  assert out.shape == X.shape
  # Zeroing both output projections leaves only the residual path.
  zeroed = jax.tree_util.tree_map_with_path(
      lambda path, p: jnp.zeros_like(p) if any(
          getattr(k, "key", None) in ("out", "fc2") for k in path) else p,
      variables)
  np.testing.assert_allclose(
      block.apply(zeroed, X, context=CONTEXT, context_mask=CONTEXT_MASK,
                  train=False), X, atol=1e-6)


def test_time_positional_embedding_is_a_function_of_seconds():
  video_times = np.array([0.125, 0.375, 0.625])  # 4 frames/s
  audio_times = np.arange(10) * 0.0625 + 0.0625  # 16 tokens/s
  video = attention.time_positional_embedding(video_times, 8)
  audio = attention.time_positional_embedding(audio_times, 8)
  # The same moment gets the same code in both streams, others do not.
  np.testing.assert_allclose(video[0], audio[1], atol=1e-6)
  np.testing.assert_allclose(video[2], audio[9], atol=1e-6)
  assert not np.allclose(video[1], audio[1], atol=1e-3)
  # Direct computation: sin(2 pi t / period) then cos, periods 0.02 .. 20 s.
  periods = 0.02 * 1000.0 ** (np.arange(4) / 3)
  angles = 2 * np.pi * video_times[:, None] / periods
  np.testing.assert_allclose(
      video, np.concatenate([np.sin(angles), np.cos(angles)], 1), atol=1e-5)
  with pytest.raises(ValueError, match="even dim"):
    attention.time_positional_embedding(video_times, 7)


def test_add_positional_embedding_time_kind():
  x = jnp.ones((2, 3, 8))
  layer = attention.AddPositionalEmbedding("time")
  times = np.array([0.0, 0.5, 1.0])
  variables = layer.init(jax.random.key(0), x, times)
  assert not variables  # fixed code, no parameter
  np.testing.assert_allclose(layer.apply(variables, x, times),
                             x + attention.time_positional_embedding(times, 8))
  # Tokens without times get learned positions.
  assert "embedding" in layer.init(jax.random.key(0), x)["params"]
  with pytest.raises(ValueError, match="2 token times for 3 tokens"):
    layer.init(jax.random.key(0), x, times[:2])
