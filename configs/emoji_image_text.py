"""Contrastive image-text training (CLIP-style) on emoji pictures and their
CLDR names, evaluated on emoji held out from training: retrieval in both
directions and zero-shot subgroup classification from the subgroup names.

Training pairs each picture with its name in a random one of its languages;
evaluation reads the English name (`text_locale=all`: a fixed random
language per example). Encoders with the config-file argument:

  --config=configs/emoji_image_text.py
  --config=configs/emoji_image_text.py:text=text_transformer,text_locale=all
"""

from typing import Optional

import ml_collections

from configs import base, emoji_subgroup


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked).

  Args:
    arg: `image=<encoder>,text=<encoder>,text_locale=<CLDR locale|all>`
      (any subset).
  """
  names = base.parse_arg(arg, image="cnn", text="bag_of_embeddings",
                         text_locale="en")
  c = ml_collections.ConfigDict()
  c.modalities = ("image", "text")
  c.data = emoji_subgroup.data_config()
  c.pp_train, c.pp_eval = emoji_subgroup.pp_configs(names["text_locale"])
  c.model = ml_collections.ConfigDict()
  c.model.num_classes = 99  # unused by the objective; the label's classes
  c.model.encoders = ml_collections.ConfigDict(
      {m: emoji_subgroup.encoder_config(names[m]) for m in c.modalities})
  base.training_recipe(c)
  base.modality_balancing(c)
  c.objective = "contrastive"
  c.model.embed_dim = 128
  c.zero_shot.template = "{}"
  emoji_subgroup.training_schedule(c)
  # 127 in-batch negatives per pair; 1,000 steps (53 epochs) keep the run
  # under 15 minutes on the 2-core CPU machine.
  c.batch_size = 128
  c.num_train_steps = 1000
  c.lock()
  return c
