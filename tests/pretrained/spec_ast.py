"""Parity spec of the "ast" family: a tiny random `transformers.ASTModel`
against the `spectrogram_transformer` encoder, both given the same
`input_values` (`input_features=True`; tests/models/encoders/test_ast.py
checks the waveform path). See test_parity.py."""

import numpy as np

ENCODER = "spectrogram_transformer"
OUTPUTS = {"last_hidden_state": {"pool": "all", "input_features": True},
           "pooled": {"pool": "cls", "input_features": True}}
# Overlapping 8x8 patches with different strides along frequency (4) and
# time (6): a 3 x 5 grid, so a transposed patch order or kernel shows.
# intermediate_size == hidden_size: the parity test's kernel transposition
# needs a square Dense kernel. initializer_range 0.2 (not 0.02): with
# weights that small attention is nearly uniform at width 32, and swapping
# queries and keys would change the outputs by only ~2e-4.
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=32, patch_size=8, frequency_stride=4,
            time_stride=6, max_length=32, num_mel_bins=16,
            initializer_range=0.2)


def perturb(model, torch, scale=0.1):
  """Moves every 1-D parameter (LayerNorm weights and biases, every bias) off
  its init, and fills the CLS and distillation tokens and the position
  table (zeros at init), so a forgotten, swapped or reordered one shows."""
  embeddings = model.embeddings
  with torch.no_grad():
    for p in model.parameters():
      if p.ndim == 1:
        p.add_(scale * torch.randn_like(p))
    for p in (embeddings.cls_token, embeddings.distillation_token,
              embeddings.position_embeddings):
      p.copy_(torch.randn_like(p))


def build(directory, **overrides):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.ASTModel(transformers.ASTConfig(**{**TINY, **overrides}))
  perturb(model, torch)
  model.save_pretrained(directory)


def mmjax_inputs():
  """Two different `input_values`, float32 `[2, max_length, num_mel_bins]`
  (the same layout in both libraries)."""
  return np.random.default_rng(0).normal(
      size=(2, TINY["max_length"], TINY["num_mel_bins"])).astype(np.float32)


def reference(directory):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.ASTModel.from_pretrained(directory).eval()
  with torch.no_grad():
    out = model(input_values=torch.from_numpy(mmjax_inputs()))
  return {"last_hidden_state": out.last_hidden_state.numpy(),
          "pooled": out.pooler_output.numpy()}


def select(output, tokens, mask):
  assert mask.all()
  return tokens if output == "last_hidden_state" else tokens[:, 0]
