"""A tiny random full CLIP saved as `CLIPModel.save_pretrained` and
`CLIPProcessor.save_pretrained` write a hub checkpoint (model, tokenizer,
image processor), for tests/pretrained/test_clip_model.py and the recipe
of docs/pretrained.md.

Its text width (40), vision width (48) and `projection_dim` (24) differ from
each other and from spec_clip_text / spec_clip_vision's (32, 32, 16), so a
projection read with the wrong tower or transposed has the wrong shape, and
`logit_scale` is not the default, so it is visibly read.
"""

import pathlib

from tests.data import tiny_tokenizers

IMAGE_SIZE = 32
MAX_LENGTH = 12
LOGIT_SCALE = 3.3  # exp: 27.1; the default is log(1 / 0.07) = 2.659
VISION = dict(image_size=IMAGE_SIZE, patch_size=8, num_channels=3,
              hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=64)
TEXT = dict(hidden_size=40, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=56, max_position_embeddings=MAX_LENGTH)
PROJECTION_DIM = 24


def build(directory: pathlib.Path, logit_scale: float = LOGIT_SCALE,
          num_layers: int = 2) -> None:
  """Writes the checkpoint into `directory` (a random model: seeded by the
  caller's `torch.manual_seed`), with `num_layers` layers per tower."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from tests.pretrained import spec_vit  # pylint: disable=g-import-not-at-top
  tokenizer = tiny_tokenizers.build_clip_tokenizer(directory)
  text = dict(TEXT, num_hidden_layers=num_layers, vocab_size=len(tokenizer),
              bos_token_id=tokenizer.bos_token_id,
              eos_token_id=tokenizer.eos_token_id,
              pad_token_id=tokenizer.pad_token_id)
  config = transformers.CLIPConfig(text_config=text, vision_config=dict(
      VISION, num_hidden_layers=num_layers),
                                   projection_dim=PROJECTION_DIM)
  model = transformers.CLIPModel(config)
  spec_vit.perturb(model, torch)
  with torch.no_grad():
    model.logit_scale.fill_(logit_scale)
  model.save_pretrained(directory)
  transformers.CLIPImageProcessor(
      size={"shortest_edge": IMAGE_SIZE},
      crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
  ).save_pretrained(directory)
