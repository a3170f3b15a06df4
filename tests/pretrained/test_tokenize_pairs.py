"""BERT sentence pairs from strings: a dict of two texts -> the `tokenize`
op with `key` and `pair_key` (in tf.data) -> the `text_transformer` encoder
loaded from a tiny BERT, against the HF tokenizer's `tokenizer(a, b)` ->
`transformers.BertModel` with its token types 0 / 1."""

import functools

import jax
import numpy as np
import pytest
import tensorflow as tf

from mmjax.data.pp import builder as pp_builder
from mmjax.models.registries import ENCODERS, split_options
from mmjax.pretrained import load as pretrained_load
from tests.data import tiny_tokenizers

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

MAX_LENGTH = 14  # the pairs below: some padded, some truncated
PREMISES = ("the quick brown fox", "a dog", "",
            "the lazy dog sleeps in the sun all day long")
HYPOTHESES = ("an animal jumps", "the quick brown fox jumps over the dog",
              "nothing", "a dog sleeps")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """A BERT (24 wide, 20 positions; not spec_bert's) with a WordPiece
  tokenizer of 120 pieces, saved together."""
  directory = tmp_path_factory.mktemp("bert_pairs")
  tokenizer = tiny_tokenizers.build_bert_tokenizer(directory, vocab_size=120)
  torch.manual_seed(4)
  transformers.BertModel(transformers.BertConfig(
      vocab_size=len(tokenizer), hidden_size=24, num_hidden_layers=2,
      num_attention_heads=3, intermediate_size=36,
      max_position_embeddings=20)).save_pretrained(directory)
  return directory


def test_sentence_pairs_match_the_tokenizer_and_bert(checkpoint):
  op = pp_builder.parse(f"tokenize({str(checkpoint)!r}, {MAX_LENGTH}, "
                        f"key='premise', pair_key='hypothesis')")
  seed = tf.constant([0, 0], tf.int64)
  inputs = next(tf.data.Dataset.from_tensor_slices(
      {"premise": list(PREMISES), "hypothesis": list(HYPOTHESES)}).map(
          lambda x: op(x, seed)).batch(len(PREMISES)).as_numpy_iterator())
  tokenizer = transformers.AutoTokenizer.from_pretrained(
      str(checkpoint), local_files_only=True)
  encoded = tokenizer(list(PREMISES), list(HYPOTHESES), padding="max_length",
                      truncation=True, max_length=MAX_LENGTH,
                      return_tensors="pt")
  types = encoded["token_type_ids"].numpy()
  assert (types == 1).any(axis=1).all()  # every row has a second segment
  assert (encoded["attention_mask"].sum(1) == MAX_LENGTH).any()  # truncated
  np.testing.assert_array_equal(inputs["token_ids"],
                                encoded["input_ids"].numpy())
  np.testing.assert_array_equal(inputs["token_type_ids"], types)
  np.testing.assert_array_equal(inputs["token_mask"],
                                encoded["attention_mask"].numpy() > 0)

  config, _ = split_options(pretrained_load.pretrained_encoder_config(
      str(checkpoint), "text_transformer", pool="cls",
      pooler="dense_tanh").to_dict())
  name = config.pop("name")
  encoder = ENCODERS.get(name)(**config)
  abstract = jax.eval_shape(lambda: encoder.init(
      jax.random.key(0), inputs, train=False))["params"]
  params = pretrained_load.load_hf_encoder(
      str(checkpoint), {"name": name, **config}, abstract, "test_pairs")
  pooled, _ = jax.jit(functools.partial(encoder.apply, train=False))(
      {"params": params}, inputs)
  model = transformers.BertModel.from_pretrained(str(checkpoint)).eval()
  with torch.no_grad():
    expected = model(**encoded).pooler_output.numpy()
  assert np.abs(np.asarray(pooled[:, 0]) - expected).max() <= 1e-4


def test_pair_errors(checkpoint):
  with pytest.raises(ValueError, match="pair_key='b' needs key"):
    pp_builder.parse(f"tokenize({str(checkpoint)!r}, 8, pair_key='b')")
  op = pp_builder.parse(f"tokenize({str(checkpoint)!r}, 8, key='a', "
                        f"pair_key='b')")
  seed = tf.constant([0, 0], tf.int64)
  with pytest.raises(ValueError, match=r"expects a dict with the keys "
                     r"\['a', 'b'\], got \['a'\]"):
    op({"a": tf.constant("x")}, seed)
  with pytest.raises(ValueError, match="expects a dict"):
    op(tf.constant("x"), seed)
  with pytest.raises(ValueError, match="for b; got string of shape \\(2,\\)"):
    op({"a": tf.constant("x"), "b": tf.constant(["y", "z"])}, seed)
