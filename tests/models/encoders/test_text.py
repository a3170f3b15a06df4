"""The text encoder's own behaviour: padding, causality, pooling, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.encoders.text import TextTransformer
from mmjax.models.registries import ENCODERS

TINY = dict(vocab_size=50, hidden_dim=16, num_layers=2, num_heads=2,
            mlp_dim=32, max_length=12)
LENGTHS = (7, 4)
LENGTH = 8


def _inputs(seed=0, **extra):
  rng = np.random.default_rng(seed)
  mask = np.arange(LENGTH)[None] < np.array(LENGTHS)[:, None]
  ids = np.where(mask, rng.integers(2, TINY["vocab_size"], (2, LENGTH)), 0)
  return {"token_ids": jnp.asarray(ids, jnp.int32),
          "token_mask": jnp.asarray(mask, jnp.int32), **extra}


def _apply(model, x, variables=None):
  if variables is None:
    variables = model.init(jax.random.key(0), x, train=False)
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  tokens, mask = apply(variables, x)
  return np.asarray(tokens), np.asarray(mask), variables


def _real(tokens):
  """The outputs at real (unpadded) positions of each example."""
  return [tokens[b, :n] for b, n in enumerate(LENGTHS)]


def test_registered_for_text():
  assert ENCODERS.get("text_transformer") is TextTransformer
  assert TextTransformer.modality == "text"


@pytest.mark.parametrize("pool,tokens", [("none", LENGTH), ("cls", 1),
                                         ("eos", 1), ("mean", 1)])
def test_shapes_and_mask(pool, tokens):
  x = _inputs()
  out, mask, _ = _apply(TextTransformer(**TINY, pool=pool), x)
  assert out.shape == (2, tokens, TINY["hidden_dim"])
  assert out.dtype == np.float32
  assert mask.dtype == np.bool_ and mask.shape == out.shape[:2]
  if pool == "none":
    np.testing.assert_array_equal(mask, np.asarray(x["token_mask"]) > 0)
  else:
    assert mask.all()


@pytest.mark.parametrize("causal", [False, True])
def test_padding_does_not_change_real_tokens(causal):
  """Whatever the padded positions hold (ids, token types), the real tokens'
  outputs and the pooled outputs are the same."""
  model = TextTransformer(**TINY, causal=causal, type_vocab_size=2,
                          embedding_norm=True, norm_first=False)
  x = _inputs(token_type_ids=jnp.zeros((2, LENGTH), jnp.int32))
  out, _, variables = _apply(model, x)
  pad = np.asarray(x["token_mask"]) == 0
  other = dict(x, token_ids=jnp.where(pad, 17, x["token_ids"]),
               token_type_ids=jnp.where(pad, 1, x["token_type_ids"]))
  changed, _, _ = _apply(model, other, variables)
  for a, b in zip(_real(out), _real(changed)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  for pool in ("cls", "mean"):
    pooled = model.clone(pool=pool)
    np.testing.assert_allclose(_apply(pooled, x, variables)[0],
                               _apply(pooled, other, variables)[0],
                               atol=1e-5, rtol=1e-5)
  # The real ids do matter (the test can fail).
  real = dict(x, token_ids=jnp.where(pad, x["token_ids"],
                                    (x["token_ids"] + 1) % TINY["vocab_size"]))
  assert not np.allclose(_apply(model, real, variables)[0][0, 0], out[0, 0],
                         atol=1e-4)


def test_token_types_matter():
  model = TextTransformer(**TINY, type_vocab_size=2)
  x = _inputs(token_type_ids=jnp.zeros((2, LENGTH), jnp.int32))
  out, _, variables = _apply(model, x)
  ones = dict(x, token_type_ids=jnp.ones((2, LENGTH), jnp.int32))
  assert not np.allclose(_apply(model, ones, variables)[0], out, atol=1e-4)
  # Absent token types are type 0.
  absent = {k: v for k, v in x.items() if k != "token_type_ids"}
  np.testing.assert_allclose(_apply(model, absent, variables)[0], out,
                             atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_causal_tokens_do_not_see_later_tokens(causal):
  model = TextTransformer(**TINY, causal=causal)
  x = _inputs()
  out, _, variables = _apply(model, x)
  k = 3
  later = dict(x, token_ids=x["token_ids"].at[:, k].set(
      (x["token_ids"][:, k] + 1) % TINY["vocab_size"]))
  changed, _, _ = _apply(model, later, variables)
  earlier_same = np.allclose(changed[:, :k], out[:, :k], atol=1e-5, rtol=1e-5)
  assert earlier_same == causal
  assert not np.allclose(changed[:, k], out[:, k], atol=1e-4)


def test_eos_pool_picks_the_eos_position():
  eos = 1
  x = _inputs()
  ids = np.asarray(x["token_ids"]).copy()
  # EOS ends each sequence and pads it too (CLIP's tokenizer pads with its
  # end-of-text token): the first occurrence is the one pooled.
  for b, n in enumerate(LENGTHS):
    ids[b, n - 1:] = eos
  x = dict(x, token_ids=jnp.asarray(ids))
  model = TextTransformer(**TINY, causal=True)
  tokens, _, variables = _apply(model, x)
  pooled, _, _ = _apply(model.clone(pool="eos", eos_token_id=eos), x, variables)
  expected = np.stack([tokens[b, n - 1] for b, n in enumerate(LENGTHS)])
  np.testing.assert_allclose(pooled[:, 0], expected, atol=1e-6)
  # eos_token_id -1: the position of the largest id.
  largest, _, _ = _apply(model.clone(pool="eos"), x, variables)
  position = ids.argmax(axis=1)
  np.testing.assert_allclose(largest[:, 0], tokens[[0, 1], position], atol=1e-6)
  assert not np.array_equal(position, np.array(LENGTHS) - 1)


def test_mean_pool_is_the_mean_of_real_tokens():
  model = TextTransformer(**TINY)
  x = _inputs()
  tokens, _, variables = _apply(model, x)
  mean, _, _ = _apply(model.clone(pool="mean"), x, variables)
  expected = np.stack([t.mean(axis=0) for t in _real(tokens)])
  np.testing.assert_allclose(mean[:, 0], expected, atol=1e-5)


def test_dense_tanh_pooler():
  model = TextTransformer(**TINY, pool="cls", pooler="dense_tanh")
  x = _inputs()
  variables = model.init(jax.random.key(0), x, train=False)
  assert variables["params"]["pooler"]["kernel"].shape == (16, 16)
  out, _, _ = _apply(model, x, variables)
  assert np.abs(out).max() <= 1.0
  without = {k: v for k, v in variables["params"].items() if k != "pooler"}
  cls, _, _ = _apply(model.clone(pooler="none"), x, {"params": without})
  p = variables["params"]["pooler"]
  np.testing.assert_allclose(out, np.tanh(cls @ p["kernel"] + p["bias"]),
                             atol=1e-5)


def test_dropout_only_in_training():
  model = TextTransformer(**TINY, dropout_rate=0.5)
  x = _inputs()
  variables = model.init(jax.random.key(0), x, train=False)
  evaluated = model.apply(variables, x, train=False)[0]
  trained = model.apply(variables, x, train=True,
                        rngs={"dropout": jax.random.key(1)})[0]
  assert not np.allclose(evaluated, trained, atol=1e-4)


def test_absent_mask_means_every_token_is_real():
  model = TextTransformer(**TINY)
  x = _inputs()
  full = dict(x, token_mask=jnp.ones((2, LENGTH), jnp.int32))
  out, _, variables = _apply(model, full)
  tokens, mask = model.apply(variables, {"token_ids": x["token_ids"]},
                             train=False)
  assert np.asarray(mask).all()
  np.testing.assert_allclose(tokens, out, atol=1e-6)


@pytest.mark.parametrize("attributes,inputs,match", [
    ({}, {"token_ids": jnp.zeros((2, 13), jnp.int32)}, r"max_length=12"),
    ({}, jnp.zeros((2, 8), jnp.int32), r"token_ids"),
    ({}, {"token_mask": jnp.ones((2, 8))}, r"token_ids"),
    ({}, {"token_ids": jnp.zeros((8,), jnp.int32)}, r"\[batch, length\]"),
    ({}, {"token_ids": jnp.zeros((2, 8), jnp.int32),
          "token_mask": jnp.ones((2, 7))}, r"token_mask"),
    ({}, {"token_ids": jnp.zeros((2, 8), jnp.int32),
          "token_type_ids": jnp.zeros((2, 8), jnp.int32)}, r"type_vocab_size"),
    ({"type_vocab_size": 2}, {"token_ids": jnp.zeros((2, 8), jnp.int32),
                              "token_type_ids": jnp.zeros((2, 7), jnp.int32)},
     r"token_type_ids"),
    ({"pool": "first"}, {"token_ids": jnp.zeros((2, 8), jnp.int32)}, r"pool"),
    ({"pooler": "dense_tanh"}, {"token_ids": jnp.zeros((2, 8), jnp.int32)},
     r"pooler"),
    ({"pool": "cls", "pooler": "tanh"},
     {"token_ids": jnp.zeros((2, 8), jnp.int32)}, r"pooler"),
])
def test_errors(attributes, inputs, match):
  with pytest.raises(ValueError, match=match):
    TextTransformer(**{**TINY, **attributes}).init(jax.random.key(0), inputs,
                                                   train=False)
