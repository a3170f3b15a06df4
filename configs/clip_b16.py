"""CLIP ViT-B/16 trained from scratch on the image-text pairs of a manifest
(`multimodal_manifest`, see configs/manifest.py and docs/data.md): the
real-size contrastive config of the accelerator path.

Sizes of CLIP ViT-B/16 (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision", section 2.4 and its
hyperparameter tables):

  image: ViT-B/16 (`vit`) on 224 x 224 RGB, 16 x 16 patches (196 tokens,
    mean-pooled: no CLS token), 768 wide, 12 layers, 12 heads, MLP 3072,
    pre-LN with CLIP's extra LayerNorm before the layers, no patch bias,
    quick GELU, LayerNorm epsilon 1e-5: 85.8 M parameters (ViT-B/16:
    "86M", Dosovitskiy et al. 2021, Table 1);
  text: 12-layer Transformer (`text_transformer`), 512 wide, 8 heads, MLP
    2048, causal, context 77, CLIP's vocabulary of 49,408 tokens: 63.2 M
    parameters (CLIP: "a 63M-parameter 12-layer 512-wide model with 8
    attention heads");
  shared embedding 512 wide (`model.embed_dim`), learned temperature.

Departures from CLIP: the texts are read with the manifest's own
tokenizer (byte-level BPE of at most 8,000 tokens, trained on the train
split's texts when the dataset is prepared), whose ids use the first
8,000 rows of the 49,408-row embedding (the size stays CLIP's so that a
CLIP tokenizer's ids fit and the count is the published one); each tower's
tokens are mean-pooled (`ContrastiveModel`) where CLIP takes the CLS and
EOS outputs.

dtype: "float32" (the recipe's default, and what the CPU runs fast); on a
GPU or TPU train with `--config.dtype=bfloat16` (parameters and optimizer
state stay float32, `mmjax.train.steps.make_train_step`).

  python launch.py --config configs/clip_b16.py:manifest=/data/pairs.csv \\
      --workdir runs/clip_b16 --config.dtype=bfloat16
  python benchmarks/train_step.py --config configs/clip_b16.py --synthetic \\
      --config.dtype=bfloat16 --config.batch_size=256
  # The same code path at a few thousand parameters (smoke tests):
  python launch.py --config configs/clip_b16.py:manifest=data.csv,size=tiny \\
      --workdir /tmp/clip_tiny --config.num_train_steps=3

Without a `manifest` the config still builds (benchmarks on synthetic
batches, the size tests), but launching it fails asking for one.
"""

from typing import Optional

import ml_collections

from configs import base, manifest
from mmjax.models.registries import ENCODERS, module_config

MODALITIES = ("image", "text")
CONTEXT = 77  # tokens per text (CLIP's context length)
VOCAB_SIZE = 49408  # CLIP's BPE vocabulary

# {size: (image tower, text tower, image side, embed_dim)}: "full" is CLIP
# ViT-B/16; "tiny" keeps every attribute but the widths, depths, image
# side and vocabulary, for smoke tests.
SIZES = {
    "full": ({"hidden_dim": 768, "num_layers": 12, "num_heads": 12,
              "mlp_dim": 3072, "patch_size": (16, 16)},
             {"hidden_dim": 512, "num_layers": 12, "num_heads": 8,
              "mlp_dim": 2048, "vocab_size": VOCAB_SIZE},
             224, 512),
    "tiny": ({"hidden_dim": 32, "num_layers": 1, "num_heads": 2,
              "mlp_dim": 64, "patch_size": (8, 8)},
             {"hidden_dim": 32, "num_layers": 1, "num_heads": 2,
              "mlp_dim": 64, "vocab_size": manifest.VOCAB_SIZE},
             32, 32),
}


def parse_size(arg: Optional[str], **defaults: str):
  """`base.parse_arg(arg, manifest="", size="full", **defaults)`.

  Raises:
    ValueError: for a size that is not a key of `SIZES`.
  """
  names = base.parse_arg(arg, manifest="", size="full", **defaults)
  if names["size"] not in SIZES:
    raise ValueError(f"config argument size={names['size']!r}: expected one "
                     f"of {sorted(SIZES)}")
  return names


def manifest_base(path: str, modalities, image_size: int
                  ) -> ml_collections.ConfigDict:
  """configs/manifest.py's config of `path` (unlocked) restricted to
  `modalities`, images prepared at `image_size` square.

  Raises:
    ValueError: naming the manifest when it lacks one of `modalities`.
    mmjax.data.errors.DataError: see `configs/manifest.py`.
  """
  c = manifest.get_config(f"manifest={path}" if path else None)
  c.unlock()
  if path and not set(modalities) <= set(c.modalities):
    raise ValueError(f"{path} has the modalities {tuple(c.modalities)}; "
                     f"this config needs {tuple(modalities)}")
  c.modalities = tuple(modalities)
  c.data.image_size = image_size
  c.pp_train, c.pp_eval = manifest.pp_configs(modalities)
  return c


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked).

  Args:
    arg: `manifest=<path>,size=<full|tiny>` (either; a bare value is the
      manifest): the `.csv` / `.jsonl` manifest with image and text columns
      (configs/manifest.py), and the model size (`SIZES`).

  Raises:
    ValueError: for an unknown size, or a manifest without an image or a
      text column.
    mmjax.data.errors.DataError: for a missing or malformed manifest.
  """
  names = parse_size(arg)
  image, text, image_size, embed_dim = SIZES[names["size"]]
  c = manifest_base(names["manifest"], MODALITIES, image_size)
  tokenize = (f'tokenize(tokenizer="{{dataset_dir}}/tokenizer", '
              f"max_length={CONTEXT})")
  c.pp_train.text = c.pp_eval.text = tokenize
  c.model = ml_collections.ConfigDict({"num_classes": c.model.num_classes})
  c.model.encoders = ml_collections.ConfigDict({
      "image": module_config(
          ENCODERS, "vit", **image, patch_bias=False, pre_norm=True,
          final_norm=True, activation="quick_gelu", layer_norm_epsilon=1e-5),
      "text": module_config(
          ENCODERS, "text_transformer", **text, max_length=CONTEXT,
          causal=True, activation="quick_gelu", layer_norm_epsilon=1e-5),
  })
  base.training_recipe(c)
  base.modality_balancing(c)
  c.objective = "contrastive"
  c.model.embed_dim = embed_dim
  c.zero_shot.template = "a photo of a {}."
  # CLIP's recipe (AdamW, beta2 0.98, weight decay 0.2, warmup then cosine,
  # learning rate 5e-4 for ViT-B/16) at a batch far below its 32,768; Adam's
  # epsilon stays optax's 1e-8 (CLIP: 1e-6).
  c.optimizer.learning_rate = 5e-4
  c.optimizer.b2 = 0.98
  c.optimizer.weight_decay = 0.2
  c.optimizer.warmup_steps = 2000
  c.batch_size = 256
  c.eval_batch_size = 256
  c.num_train_steps = 20000
  c.log_every_steps = 100
  c.eval_every_steps = 2000
  c.checkpoint_every_steps = 2000
  c.lock()
  return c
