"""A pretrained CLIP from a local Hugging Face directory, on emoji pictures
and their names: zero-shot with no training, or fine-tuned with the
contrastive objective (`mmjax.pretrained.clip.clip_config` over
`configs/emoji_image_text.py`).

  # Zero-shot on new files, no training: the workdir has no checkpoint, so
  # the CLIP's own weights (towers, projections, logit_scale) are used.
  python launch.py --config configs/clip_emoji.py:checkpoint=/ckpt/clip \\
      --workdir runs/clip --mode=predict --predict_manifest=photos.csv \\
      --zero_shot_classes=classes.txt
  # Fine-tune on emoji (then predict/evaluate from the workdir as usual).
  python launch.py --config configs/clip_emoji.py:checkpoint=/ckpt/clip \\
      --workdir runs/clip_emoji
"""

from typing import Optional

import ml_collections

from configs import base, emoji_image_text
from mmjax.pretrained import clip


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked).

  Args:
    arg: `checkpoint=<a local CLIP directory>` (with its tokenizer and image
      processor, as `save_pretrained` writes them).

  Raises:
    ValueError: without a checkpoint, or for one that is not a full
      `CLIPModel` (see `clip.clip_config`).
  """
  checkpoint = base.parse_arg(arg, checkpoint="")["checkpoint"]
  if not checkpoint:
    raise ValueError("configs/clip_emoji.py needs the CLIP directory: "
                     "--config=configs/clip_emoji.py:checkpoint=/path/to/clip")
  c = clip.clip_config(checkpoint, emoji_image_text.get_config())
  c.zero_shot.template = "an emoji of {}."
  c.optimizer.learning_rate = 1e-5
  c.optimizer.warmup_steps = 50
  c.num_train_steps = 500
  return c
