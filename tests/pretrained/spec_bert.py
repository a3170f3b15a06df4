"""Parity spec of the "bert" family: a tiny random `transformers.BertModel`
(with its pooler) against the `text_transformer` encoder, on a padded batch
with two token types. See test_parity.py."""

import numpy as np

ENCODER = "text_transformer"
OUTPUTS = {"last_hidden_state": {"pool": "none"},
           "pooled": {"pool": "cls", "pooler": "dense_tanh"}}
# intermediate_size == hidden_size: the parity test's kernel transposition
# needs a square Dense kernel in every output's parameters. At BERT's
# initializer_range 0.02 a model this narrow attends almost uniformly, so
# swapping queries and keys would hardly show; 0.2 makes attention peaked.
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=32,
            max_position_embeddings=16, type_vocab_size=2,
            initializer_range=0.2)
LENGTHS = (8, 5, 2)  # right padding to the longest


def perturb(model, torch, scale=0.1):
  """Moves every 1-D parameter (LayerNorm weights and biases, every bias)
  off its init, so a forgotten or swapped one shows."""
  with torch.no_grad():
    for p in model.parameters():
      if p.ndim == 1:
        p.add_(scale * torch.randn_like(p))


def build(directory, **overrides):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  config = transformers.BertConfig(**{**TINY, **overrides})
  model = transformers.BertModel(config, add_pooling_layer=True)
  perturb(model, torch)
  model.save_pretrained(directory)


def mmjax_inputs():
  """Three sequences of `LENGTHS` tokens, right-padded with id 0: token_ids,
  token_mask and token_type_ids (type 1 from the middle of each sequence),
  int32 `[3, 8]`."""
  rng = np.random.default_rng(0)
  length = max(LENGTHS)
  mask = np.arange(length)[None] < np.array(LENGTHS)[:, None]
  words = rng.integers(1, TINY["vocab_size"], (len(LENGTHS), length))
  ids = np.where(mask, words, 0)
  types = (np.arange(length)[None] >= np.array(LENGTHS)[:, None] // 2) & mask
  return {"token_ids": ids.astype(np.int32),
          "token_mask": mask.astype(np.int32),
          "token_type_ids": types.astype(np.int32)}


def reference(directory):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.BertModel.from_pretrained(directory).eval()
  x = {k: torch.from_numpy(v.astype(np.int64))
       for k, v in mmjax_inputs().items()}
  with torch.no_grad():
    out = model(input_ids=x["token_ids"], attention_mask=x["token_mask"],
                token_type_ids=x["token_type_ids"])
  return {"last_hidden_state": out.last_hidden_state.numpy(),
          "pooled": out.pooler_output.numpy()}


def select(output, tokens, mask):
  if output == "last_hidden_state":
    np.testing.assert_array_equal(mask, mmjax_inputs()["token_mask"] > 0)
    return tokens
  assert mask.all() and tokens.shape[1] == 1
  return tokens[:, 0]
