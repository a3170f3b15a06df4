"""Parity spec of the "vit" family: a tiny random `transformers.ViTModel`
(with its pooler) against the `vit` encoder. See test_parity.py."""

import numpy as np

ENCODER = "vit"
OUTPUTS = {"last_hidden_state": {"pool": "all"},
           "pooled": {"pool": "cls", "pooler": "dense_tanh"}}
IMAGE_SIZE = 32
# intermediate_size == hidden_size: the parity test's kernel transposition
# needs a square Dense kernel in every output's parameters.
TINY = dict(image_size=IMAGE_SIZE, patch_size=8, num_channels=3,
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=32)


def perturb(model, torch, scale=0.1):
  """Moves every 1-D parameter (LayerNorm weights and biases, every bias)
  off its init, so a forgotten or swapped one shows, and gives the Linear
  weights unit-variance outputs (std fan_in**-0.5, not the 0.02 init), so
  that attention is far from uniform and swapping query and key shows."""
  with torch.no_grad():
    for p in model.parameters():
      if p.ndim == 1:
        p.add_(scale * torch.randn_like(p))
      elif p.ndim == 2:
        p.normal_(0.0, p.shape[1] ** -0.5)


def build(directory, **overrides):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  config = transformers.ViTConfig(**{**TINY, **overrides})
  model = transformers.ViTModel(config, add_pooling_layer=True)
  perturb(model, torch)
  model.save_pretrained(directory)


def mmjax_inputs(size=IMAGE_SIZE):
  """Two different images, float32 `[2, size, size, 3]`."""
  return np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(
      np.float32)


def torch_inputs():
  import torch  # pylint: disable=g-import-not-at-top
  return torch.from_numpy(mmjax_inputs().transpose(0, 3, 1, 2).copy())


def reference(directory):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.ViTModel.from_pretrained(directory).eval()
  with torch.no_grad():
    out = model(pixel_values=torch_inputs())
  return {"last_hidden_state": out.last_hidden_state.numpy(),
          "pooled": out.pooler_output.numpy()}


def select(output, tokens, mask):
  assert mask.all()
  return tokens if output == "last_hidden_state" else tokens[:, 0]
