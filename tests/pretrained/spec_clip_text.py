"""Parity spec of the "clip_text" family: a tiny random
`transformers.CLIPTextModel` against the `text_transformer` encoder, on a
padded batch. See test_parity.py (a full `CLIPModel` checkpoint:
test_text_families.py)."""

import numpy as np

ENCODER = "text_transformer"
OUTPUTS = {"last_hidden_state": {"pool": "none"},
           "pooled": {"pool": "eos"}}
# intermediate_size == hidden_size: the parity test's kernel transposition
# needs a square Dense kernel in every output's parameters. The end-of-text
# id is not the largest, so pooling at the largest id (the legacy rule)
# would fail parity; pad_token_id is HF's default.
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=32,
            max_position_embeddings=16, bos_token_id=0, eos_token_id=5,
            pad_token_id=1)
LENGTHS = (9, 6, 3)  # with BOS and EOS; right padding to the longest


def build(directory, **overrides):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from tests.pretrained import spec_bert  # pylint: disable=g-import-not-at-top
  config = transformers.CLIPTextConfig(**{**TINY, **overrides})
  model = transformers.CLIPTextModel(config)
  spec_bert.perturb(model, torch)
  model.save_pretrained(directory)


def mmjax_inputs(eos_token_id=TINY["eos_token_id"]):
  """Three sequences `[BOS, words, EOS]` of `LENGTHS` tokens, right-padded
  with `pad_token_id`: token_ids and token_mask, int32 `[3, 9]`. Word ids
  avoid BOS, PAD and EOS and include ids above EOS."""
  rng = np.random.default_rng(0)
  length = max(LENGTHS)
  positions = np.arange(length)[None]
  lengths = np.array(LENGTHS)[:, None]
  words = rng.integers(6, TINY["vocab_size"], (len(LENGTHS), length))
  ids = np.where(positions < lengths - 1, words, TINY["pad_token_id"])
  ids = np.where(positions == lengths - 1, eos_token_id, ids)
  ids[:, 0] = TINY["bos_token_id"]
  return {"token_ids": ids.astype(np.int32),
          "token_mask": (positions < lengths).astype(np.int32)}


def hf_outputs(model, inputs):
  """`{"last_hidden_state", "pooled"}` of a `CLIPTextModel` on `inputs`."""
  import torch  # pylint: disable=g-import-not-at-top
  with torch.no_grad():
    x = {k: torch.from_numpy(v.astype(np.int64)) for k, v in inputs.items()}
    out = model(input_ids=x["token_ids"], attention_mask=x["token_mask"])
  return {"last_hidden_state": out.last_hidden_state.numpy(),
          "pooled": out.pooler_output.numpy()}


def reference(directory):
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.CLIPTextModel.from_pretrained(directory).eval()
  return hf_outputs(model, mmjax_inputs())


def select(output, tokens, mask):
  if output == "last_hidden_state":
    np.testing.assert_array_equal(mask, mmjax_inputs()["token_mask"] > 0)
    return tokens
  assert mask.all() and tokens.shape[1] == 1
  return tokens[:, 0]
