"""MBT-B/16: audio-visual classification of a manifest's image and audio
(`multimodal_manifest`, see configs/manifest.py and docs/data.md) with
attention bottlenecks, at the size of Nagrani et al. 2021, "Attention
Bottlenecks for Multimodal Fusion" (MBT): the real-size fusion config of
the accelerator path (configs/av_digits_transformer.py is the same model
at av_digits' size).

  image: ViT-B/16 (`vit`) on 224 x 224 RGB, 16 x 16 patches, 768 wide, 12
    heads, MLP 3072;
  audio: AST-B (`spectrogram_transformer`) on 128-bin log-mel spectrograms
    of 8 s at 16 kHz (25 ms windows every 10 ms: 801 frames, padded to 816),
    non-overlapping 16 x 16 patches (408 tokens), 768 wide, 12 heads, MLP
    3072;
  fusion: each modality's first 8 layers unimodal (the encoders'
    `num_layers`), the last 4 through `bottleneck` fusion with 4 shared
    bottleneck tokens (MBT's "fusion layer L_f = 8" of L = 12, B = 4; the
    bottleneck block's own Transformer layers, one per modality and layer,
    768 wide, 12 heads, MLP 3072).

Departures from MBT: trained from scratch with mmjax's recipe (MBT
fine-tunes ImageNet-21k ViT-B weights with SGD), on the manifest's images
(MBT samples 8 RGB frames of a video), mean-pooled tokens and one head
(see `mmjax.models.fusion.bottleneck.BottleneckFusion`), each modality
projected by a Dense to the fusion width before the fusion layers.

dtype: "float32" (the recipe's default); on a GPU or TPU train with
`--config.dtype=bfloat16`.

  python launch.py --config configs/mbt_b16.py:manifest=/data/clips.csv \\
      --workdir runs/mbt_b16 --config.dtype=bfloat16
  python benchmarks/train_step.py --config configs/mbt_b16.py --synthetic \\
      --config.dtype=bfloat16 --config.batch_size=64
  python launch.py --config configs/mbt_b16.py:manifest=data.csv,size=tiny \\
      --workdir /tmp/mbt_tiny --config.num_train_steps=3
"""

from typing import Optional

import ml_collections

from configs import base, clip_b16
from mmjax.models.registries import ENCODERS, FUSION, module_config

MODALITIES = ("image", "audio")
SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
TOTAL_LAYERS, FUSION_LAYER, BOTTLENECK_TOKENS = 12, 8, 4
_B = {"hidden_dim": 768, "num_heads": 12, "mlp_dim": 3072}
_TINY = {"hidden_dim": 32, "num_heads": 2, "mlp_dim": 64}

# {size: (encoder widths, unimodal layers, fusion layers, image side,
# image patch, audio seconds, mel bins)}; "tiny" keeps every attribute but
# these, for smoke tests (two fusion layers: with one, the modalities do
# not interact).
SIZES = {
    "full": (_B, FUSION_LAYER, TOTAL_LAYERS - FUSION_LAYER, 224, 16, 8, 128),
    "tiny": (_TINY, 1, 2, 32, 8, 1, 16),
}


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked).

  Args:
    arg: `manifest=<path>,size=<full|tiny>` (either; a bare value is the
      manifest): the `.csv` / `.jsonl` manifest with image and audio
      columns (configs/manifest.py), and the model size (`SIZES`).

  Raises:
    ValueError: for an unknown size, or a manifest without an image or an
      audio column.
    mmjax.data.errors.DataError: for a missing or malformed manifest.
  """
  names = clip_b16.parse_size(arg)
  (width, unimodal, fusion, image_size, patch, seconds,
   mels) = SIZES[names["size"]]
  c = clip_b16.manifest_base(names["manifest"], MODALITIES, image_size)
  c.data.sample_rate = SAMPLE_RATE
  samples = seconds * SAMPLE_RATE
  c.pp_train.audio = f"to_float|pad_or_crop({samples}, mode='random')"
  c.pp_eval.audio = f"to_float|pad_or_crop({samples}, mode='center')"
  frontend = {"features": "log_mel", "sample_rate": SAMPLE_RATE,
              "n_fft": 400, "hop_length": 160, "n_mels": mels}
  c.model.encoders = ml_collections.ConfigDict({
      "image": module_config(ENCODERS, "vit", **width, num_layers=unimodal,
                             patch_size=(patch, patch), activation="gelu"),
      "audio": module_config(ENCODERS, "spectrogram_transformer", **width,
                             num_layers=unimodal, patch_size=(16, 16),
                             frontend=frontend, activation="gelu"),
  })
  c.model.fusion = module_config(
      FUSION, "bottleneck", dim=width["hidden_dim"], num_layers=fusion,
      num_heads=width["num_heads"], mlp_dim=width["mlp_dim"],
      num_bottleneck_tokens=BOTTLENECK_TOKENS, dropout_rate=0.0)
  base.training_recipe(c)
  base.modality_balancing(c)
  c.optimizer.learning_rate = 1e-4
  c.optimizer.weight_decay = 0.05
  c.optimizer.warmup_steps = 1000
  c.batch_size = 64
  c.eval_batch_size = 64
  c.num_train_steps = 20000
  c.log_every_steps = 100
  c.eval_every_steps = 2000
  c.checkpoint_every_steps = 2000
  c.lock()
  return c
