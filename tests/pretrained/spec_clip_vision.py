"""Parity spec of the "clip_vision" family: the image tower of a tiny random
full `transformers.CLIPModel` (text tower, projections and `logit_scale`
beside it in the file) against the `vit` encoder. See test_parity.py."""

from tests.pretrained.spec_vit import (IMAGE_SIZE, mmjax_inputs, perturb,
                                       torch_inputs)

ENCODER = "vit"
OUTPUTS = {"last_hidden_state": {"pool": "all"},
           "pooled": {"pool": "cls", "pooler": "layer_norm"}}
# intermediate_size == hidden_size: see spec_vit.
VISION = dict(image_size=IMAGE_SIZE, patch_size=8, num_channels=3,
              hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=32)
TEXT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=1,
            num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=16, bos_token_id=96, eos_token_id=97,
            pad_token_id=98)

__all__ = ["ENCODER", "OUTPUTS", "build", "mmjax_inputs", "reference",
           "select", "build_vision_model"]


def build(directory):
  """A full `CLIPModel` checkpoint (model_type "clip", "vision_model."
  weights)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  config = transformers.CLIPConfig(text_config=TEXT, vision_config=VISION,
                                   projection_dim=16)
  model = transformers.CLIPModel(config)
  perturb(model, torch)
  model.save_pretrained(directory)


def build_vision_model(directory, with_projection=False):
  """A `CLIPVisionModel` checkpoint (model_type "clip_vision_model"), or a
  `CLIPVisionModelWithProjection` one."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  config = transformers.CLIPVisionConfig(**VISION, projection_dim=16)
  cls = (transformers.CLIPVisionModelWithProjection if with_projection
         else transformers.CLIPVisionModel)
  model = cls(config)
  perturb(model, torch)
  model.save_pretrained(directory)


def reference(directory):
  """Outputs of the image tower loaded from `directory`, whichever of the
  checkpoints above it holds."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.AutoModel.from_pretrained(directory).eval()
  tower = getattr(model, "vision_model", model)
  with torch.no_grad():
    out = tower(pixel_values=torch_inputs())
  return {"last_hidden_state": out.last_hidden_state.numpy(),
          "pooled": out.pooler_output.numpy()}


def select(output, tokens, mask):
  assert mask.all()
  return tokens if output == "last_hidden_state" else tokens[:, 0]
