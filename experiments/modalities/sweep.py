"""Emoji subgroup classification (99 classes) from the picture, the name, or
both, on base emoji held out from training.

Three splits of the base emoji (`data.split_seed` 0, 1, 2; every variant of a
base emoji in one split), averaged like folds. The recipe is the config's
own (`configs/emoji_subgroup.py`: 1,500 steps of global batch size 64);
training reads each emoji's name in a random one of its languages,
evaluation reads the English name. Run with
  python experiments/run_sweep.py experiments/modalities
"""

CONFIG = "configs/emoji_subgroup.py"

COMMON = {"eval_splits": ("validation", "test")}

VARIANTS = {
    "image_only": ("modalities=image", {}),
    "text_only": ("modalities=text", {}),
    "early_fusion": ("", {}),
}
UNIMODAL = ("image_only", "text_only")

PROTOCOLS = {"base_emoji_split": {f"seed{s}": {"data.split_seed": s}
                                  for s in range(3)}}
