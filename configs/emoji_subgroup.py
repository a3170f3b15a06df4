"""Emoji subgroup classification (99 classes) from the picture, the name, or
both, on emoji held out from training (`emoji_image_text`: split by base
emoji, so skin-tone and gender variants never straddle two splits).

Training reads each emoji's name in a random one of its languages (CLDR short
names, up to 135 locales); evaluation reads the English name. Modalities and
encoders with the config-file argument:

  --config=configs/emoji_subgroup.py                       # image + text
  --config=configs/emoji_subgroup.py:modalities=image      # image only
  --config=configs/emoji_subgroup.py:modalities=text,text=gru
  --config=configs/emoji_subgroup.py:fusion=cross_attention
"""

from typing import Optional

import ml_collections

from configs import base
from mmjax.models.registries import ENCODERS, FUSION, module_config

IMAGE_SIZE = 64
MAX_TOKENS = 16
VOCAB_SIZE = 8000
TOKENIZE = (f'tokenize(tokenizer="{{dataset_dir}}/tokenizer", '
            f"max_length={MAX_TOKENS})")
_ENCODERS = {
    "cnn": {"features": (32, 64, 128, 128), "embed_dim": 128},
    "vit": {"patch_size": (8, 8), "hidden_dim": 128, "num_layers": 4,
            "num_heads": 4, "mlp_dim": 256},
    **base.text_encoder_sizes(VOCAB_SIZE, MAX_TOKENS),
}


def encoder_config(name: str) -> ml_collections.ConfigDict:
  """The registered encoder's defaults with this dataset's sizes."""
  return module_config(ENCODERS, name, **_ENCODERS.get(name, {}))


def data_config() -> ml_collections.ConfigDict:
  """The `emoji_image_text` dataset (see mmjax/data/builders/emoji.py)."""
  d = ml_collections.ConfigDict()
  d.name = "emoji_image_text"
  d.manual_dir = ""  # "" -> $MMJAX_MANUAL_DIR, else ../shared/data
  d.data_dir = ""  # "" -> $MMJAX_DATA_DIR, else ~/tensorflow_datasets
  d.image_size = IMAGE_SIZE
  d.split_fractions = (0.7, 0.1, 0.2)
  d.split_seed = 0
  d.vocab_size = VOCAB_SIZE
  return d


def pp_configs(eval_locale: str = "en"):
  """(pp_train, pp_eval): images in [0, 1], shifted by up to 4 pixels in
  training; a random language's name in training, `eval_locale`'s at
  evaluation ("all": a fixed random language per example), tokenized with
  the dataset's own tokenizer."""
  pick = ("random_text" if eval_locale == "all"
          else f"select_text('{eval_locale}')")
  pp_train = ml_collections.ConfigDict({
      "image": "value_range(0, 1)|random_translate(4)",
      "text": f"random_text|{TOKENIZE}"})
  pp_eval = ml_collections.ConfigDict({
      "image": "value_range(0, 1)",
      "text": f"{pick}|{TOKENIZE}"})
  return pp_train, pp_eval


def training_schedule(c: ml_collections.ConfigDict) -> None:
  """1,500 steps (40 epochs of the 2,428 training emoji at global batch size
  64), 100 of warm-up, evaluated and checkpointed every 500."""
  c.num_train_steps = 1500
  c.optimizer.warmup_steps = 100
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked).

  Args:
    arg: `modalities=<image|text|image+text>,fusion=<block>,image=<encoder>,
      text=<encoder>` (any subset).
  """
  names = base.parse_arg(arg, modalities="image+text", fusion="early_fusion",
                         image="cnn", text="bag_of_embeddings")
  c = ml_collections.ConfigDict()
  c.modalities = tuple(names["modalities"].split("+"))
  c.data = data_config()
  c.pp_train, c.pp_eval = pp_configs()
  c.model = ml_collections.ConfigDict()
  c.model.num_classes = 99
  c.model.encoders = ml_collections.ConfigDict(
      {m: encoder_config(names[m]) for m in ("image", "text")})
  c.model.fusion = module_config(FUSION, names["fusion"])
  if "dropout_rate" in c.model.fusion:
    c.model.fusion.dropout_rate = 0.2
  base.training_recipe(c)
  base.modality_balancing(c)
  training_schedule(c)
  c.lock()
  return c
