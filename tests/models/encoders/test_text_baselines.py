"""The bag-of-embeddings and bidirectional recurrent text encoders against
direct computations: hand-run cells, hand-computed means, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.encoders.recurrent import GRU, LSTM
from mmjax.models.encoders.text import BagOfEmbeddings
from mmjax.models.registries import ENCODERS

VOCAB, EMBED, HIDDEN = 20, 6, 5
LENGTHS = (7, 4, 0)  # the last example is all padding
LENGTH = 8
RECURRENT = [(LSTM, nn.OptimizedLSTMCell), (GRU, nn.GRUCell)]


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  mask = np.arange(LENGTH)[None] < np.array(LENGTHS)[:, None]
  ids = rng.integers(0, VOCAB, (len(LENGTHS), LENGTH))
  return {"token_ids": jnp.asarray(ids, jnp.int32),
          "token_mask": jnp.asarray(mask)}


def _apply(model, x, variables=None):
  if variables is None:
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x,
                                             train=False))(x)
  tokens, mask = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      variables, x)
  return np.asarray(tokens), np.asarray(mask), variables


def _recurrent(cls, **kwargs):
  return cls(vocab_size=VOCAB, embed_dim=EMBED, hidden_dim=HIDDEN, **kwargs)


def _run_cell(cell, params, xs):
  """The outputs of `cell` stepped over `xs` `[steps, dim]` from a zero state."""
  carry = cell.initialize_carry(jax.random.key(0), (1, xs.shape[-1]))
  step = jax.jit(lambda c, x: cell.apply({"params": params}, c, x))
  outputs = []
  for x in xs:
    carry, y = step(carry, x[None])
    outputs.append(y[0])
  return np.stack(outputs) if outputs else np.zeros((0, HIDDEN))


@pytest.mark.parametrize("name,cls", [("lstm", LSTM), ("gru", GRU),
                                      ("bag_of_embeddings", BagOfEmbeddings)])
def test_registered_for_text(name, cls):
  assert ENCODERS.get(name) is cls and cls.modality == "text"


@pytest.mark.parametrize("cls,cell_type", RECURRENT)
def test_bidirectional_outputs_equal_cells_run_by_hand(cls, cell_type):
  """Forward cell over the real tokens, backward cell from the last real
  token to the first; pools "last" and "mean" read those outputs."""
  x = _inputs()
  tokens, mask, variables = _apply(_recurrent(cls, pool="none"), x)
  params = variables["params"]
  table = np.asarray(params["token_embedding"]["embedding"])
  cell = cell_type(HIDDEN, parent=None)
  layer = params["layer_0"]
  expected_last, expected_mean = [], []
  for b, n in enumerate(LENGTHS):
    embedded = table[np.asarray(x["token_ids"][b, :n])]
    forward = _run_cell(cell, layer["forward_rnn"]["cell"], embedded)
    backward = _run_cell(cell, layer["backward_rnn"]["cell"], embedded[::-1])
    both = np.concatenate([forward, backward[::-1]], axis=-1)
    np.testing.assert_allclose(tokens[b, :n], both, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(tokens[b, n:], 0.0)
    if n:
      expected_last.append(np.concatenate([forward[-1], backward[-1]]))
      expected_mean.append(both.mean(axis=0))
    else:
      expected_last.append(np.zeros(2 * HIDDEN))
      expected_mean.append(np.zeros(2 * HIDDEN))
  np.testing.assert_array_equal(mask, np.asarray(x["token_mask"]))
  for pool, expected in (("last", expected_last), ("mean", expected_mean)):
    pooled, pooled_mask, _ = _apply(_recurrent(cls, pool=pool), x, variables)
    assert pooled.shape == (len(LENGTHS), 1, 2 * HIDDEN) and pooled_mask.all()
    np.testing.assert_allclose(pooled[:, 0], np.stack(expected), atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize("pool", ["none", "last", "mean"])
@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_two_layers_padded_equal_unpadded(cls, pool):
  """Each example in the padded batch gives what it gives alone, unpadded."""
  x = _inputs()
  model = _recurrent(cls, num_layers=2, pool=pool)
  tokens, _, variables = _apply(model, x)
  assert np.isfinite(tokens).all()
  for b, n in enumerate(LENGTHS[:2]):
    alone = {"token_ids": x["token_ids"][b:b + 1, :n],
             "token_mask": jnp.ones((1, n), bool)}
    expected, _, _ = _apply(model, alone, variables)
    got = tokens[b, :n] if pool == "none" else tokens[b]
    np.testing.assert_allclose(got, expected[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("projection_dim", [0, 3])
def test_bag_of_embeddings_is_the_mean_of_its_table_rows(projection_dim):
  x = _inputs()
  model = BagOfEmbeddings(vocab_size=VOCAB, embed_dim=EMBED, max_length=LENGTH,
                          projection_dim=projection_dim)
  tokens, mask, variables = _apply(model, x)
  params = variables["params"]
  table = np.asarray(params["token_embedding"]["embedding"])
  expected = np.stack([table[np.asarray(x["token_ids"][b, :n])].mean(axis=0)
                       if n else np.zeros(EMBED)
                       for b, n in enumerate(LENGTHS)])
  if projection_dim:
    dense = params["projection"]
    expected = expected @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
  assert tokens.shape == (len(LENGTHS), 1, projection_dim or EMBED)
  assert mask.shape == (len(LENGTHS), 1) and mask.all()
  np.testing.assert_allclose(tokens[:, 0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", [
    BagOfEmbeddings(vocab_size=VOCAB, embed_dim=EMBED, dropout_rate=0.5),
    _recurrent(LSTM, dropout_rate=0.5), _recurrent(GRU, dropout_rate=0.5)],
    ids=["bag_of_embeddings", "lstm", "gru"])
def test_dropout_only_in_training(model):
  x = _inputs()
  variables = model.init(jax.random.key(0), x, train=False)
  run = lambda train, key: model.apply(variables, x, train=train,
                                       rngs={"dropout": key})[0]
  evaluation = run(False, jax.random.key(1))
  np.testing.assert_array_equal(evaluation, run(False, jax.random.key(2)))
  assert not np.allclose(run(True, jax.random.key(1)), evaluation, atol=1e-4)


@pytest.mark.parametrize("model", [
    BagOfEmbeddings(vocab_size=VOCAB, embed_dim=EMBED, max_length=LENGTH),
    _recurrent(LSTM), _recurrent(GRU)],
    ids=["bag_of_embeddings", "lstm", "gru"])
def test_bad_inputs_raise(model):
  x = _inputs()
  variables = model.init(jax.random.key(0), x, train=False)
  apply = lambda x: model.apply(variables, x, train=False)
  with pytest.raises(ValueError, match=r"token_ids \[batch, length\], got "
                     r"shape \(8,\)"):
    apply(dict(x, token_ids=x["token_ids"][0]))
  with pytest.raises(ValueError, match="mapping with 'token_ids'"):
    apply({"token_mask": x["token_mask"]})
  with pytest.raises(ValueError, match="token_mask has shape"):
    apply(dict(x, token_mask=x["token_mask"][:, :3]))
  with pytest.raises(ValueError, match="type_vocab_size=0"):
    apply(dict(x, token_type_ids=jnp.zeros_like(x["token_ids"])))


def test_bag_of_embeddings_rejects_ids_longer_than_max_length():
  x = _inputs()
  model = BagOfEmbeddings(vocab_size=VOCAB, embed_dim=EMBED, max_length=LENGTH)
  variables = model.init(jax.random.key(0), x, train=False)
  longer = {"token_ids": jnp.zeros((1, LENGTH + 1), jnp.int32)}
  with pytest.raises(ValueError, match=f"length {LENGTH + 1}, more than "
                     f"max_length={LENGTH}"):
    model.apply(variables, longer, train=False)


@pytest.mark.parametrize("attribute,value,message", [
    ("pool", "max", "pool must be one of"),
    ("num_layers", 0, "num_layers must be at least 1")])
@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_recurrent_rejects_bad_attributes(cls, attribute, value, message):
  with pytest.raises(ValueError, match=message):
    _recurrent(cls, **{attribute: value}).init(jax.random.key(0), _inputs(),
                                               train=False)
