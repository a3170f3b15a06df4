"""End to end from text: strings -> the `tokenize` preprocessing op (in
tf.data) -> the `text_transformer` encoder loaded from a tiny BERT
checkpoint, against the same strings -> the checkpoint's Hugging Face
tokenizer -> `transformers.BertModel`. Same bound as test_parity.py."""

import jax
import numpy as np
import pytest
import tensorflow as tf

from mmjax.pretrained import load as pretrained_load
from mmjax.data.pp import builder as pp_builder
from mmjax.models.registries import ENCODERS, split_options
from tests.data import tiny_tokenizers
from tests.pretrained import spec_bert

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

PARITY_ATOL = 1e-4
MAX_LENGTH = spec_bert.TINY["max_position_embeddings"]  # 16 positions


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """A tiny random BERT with a WordPiece tokenizer trained on
  `tiny_tokenizers.CORPUS`, saved together as a hub checkpoint is."""
  directory = tmp_path_factory.mktemp("bert_with_tokenizer")
  tokenizer = tiny_tokenizers.build_bert_tokenizer(directory)
  torch.manual_seed(0)
  spec_bert.build(directory, vocab_size=len(tokenizer))
  return directory


def mmjax_outputs(directory, texts, **overrides):
  """(tokens, mask, inputs) of the encoder on the op's tokens."""
  op = pp_builder.parse(f"tokenize({str(directory)!r}, {MAX_LENGTH})")
  seed = tf.constant([0, 0], tf.int64)
  inputs = next(tf.data.Dataset.from_tensor_slices(list(texts)).map(
      lambda t: op(t, seed)).batch(len(texts)).as_numpy_iterator())
  config, _ = split_options(pretrained_load.pretrained_encoder_config(
      str(directory), "text_transformer", **overrides).to_dict())
  name = config.pop("name")
  encoder = ENCODERS.get(name)(**config)
  abstract = jax.eval_shape(lambda: encoder.init(
      jax.random.key(0), inputs, train=False))["params"]
  params = pretrained_load.load_hf_encoder(str(directory),
                                           {"name": name, **config},
                                           abstract, "test_tokenize_parity")
  tokens, mask = encoder.apply({"params": params}, inputs, train=False)
  return np.asarray(tokens), np.asarray(mask), inputs


def test_text_to_features_matches_transformers(checkpoint):
  texts = tiny_tokenizers.TEXTS
  tokenizer = transformers.AutoTokenizer.from_pretrained(
      str(checkpoint), local_files_only=True)
  encoded = tokenizer(list(texts), padding="max_length", truncation=True,
                      max_length=MAX_LENGTH, return_tensors="pt")
  lengths = encoded["attention_mask"].sum(1).numpy()
  assert lengths.min() < MAX_LENGTH and (lengths == MAX_LENGTH).any()
  model = transformers.BertModel.from_pretrained(str(checkpoint)).eval()
  with torch.no_grad():
    reference = model(**encoded)

  tokens, mask, inputs = mmjax_outputs(checkpoint, texts, pool="none")
  np.testing.assert_array_equal(inputs["token_ids"],
                                encoded["input_ids"].numpy())
  np.testing.assert_array_equal(mask, encoded["attention_mask"].numpy() > 0)
  hidden = reference.last_hidden_state.numpy()
  assert tokens.shape == hidden.shape == (len(texts), MAX_LENGTH, 32)
  assert np.abs(tokens - hidden).max() <= PARITY_ATOL

  pooled, _, _ = mmjax_outputs(checkpoint, texts, pool="cls",
                               pooler="dense_tanh")
  assert np.abs(pooled[:, 0] - reference.pooler_output.numpy()).max() \
      <= PARITY_ATOL
