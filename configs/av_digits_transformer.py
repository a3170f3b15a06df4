"""Audio-visual digits with Transformer encoders and attention fusion.

ViT over 4x4 image patches and an AST-style spectrogram Transformer over 8x8
log-mel patches, each with `num_layers` unimodal layers, then attention
bottlenecks (MBT) for the remaining fusion layers: mid-fusion from layer 2 of
4. Other fusion blocks with the config-file argument: an attention block
takes the last 2 of the 4 layers, any other block (which reads pooled
features) follows 4 unimodal layers:

  --config=configs/av_digits_transformer.py:fusion=cross_attention
  --config=configs/av_digits_transformer.py:fusion=early_fusion

On a new voice this recipe is weak: 0.714 on the validation speaker george
(experiments/zoo, section `mid_fusion_selection`). The model zoo trains it
with 7x7 image patches, tokens of 2 whole log-mel frames, the speaker
recipe of configs/av_digits.py (per-band CMVN, SpecAugment, audio dropped
for half the examples) and 1,200 steps: 0.940 on george, 0.940 +- 0.019
leave-one-speaker-out (experiments/zoo/RESULTS.md, overrides in
experiments/zoo/sweep.py). The defaults stay: benchmarks/RESULTS.md
measured this model.
"""

from typing import Optional

import ml_collections

from configs import av_digits, base
from mmjax.models.registries import ENCODERS, FUSION, module_config

_WIDTH = {"hidden_dim": 64, "num_heads": 4, "mlp_dim": 128}
_DEPTH = 4  # Transformer layers per modality, unimodal and fusion together
_FUSION_LAYERS = 2


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked). `arg`: `fusion=<block>`."""
  names = base.parse_arg(arg, fusion="bottleneck")
  c = av_digits.get_config()
  c.unlock()
  attention = "num_layers" in module_config(FUSION, names["fusion"])
  layers = _DEPTH - _FUSION_LAYERS if attention else _DEPTH
  c.model.encoders = ml_collections.ConfigDict({
      "image": module_config(ENCODERS, "vit", patch_size=(4, 4),
                             num_layers=layers, **_WIDTH),
      "audio": module_config(ENCODERS, "spectrogram_transformer",
                             frontend=av_digits.AUDIO_FRONTEND,
                             patch_size=(8, 8), num_layers=layers, **_WIDTH),
  })
  if attention:
    c.model.fusion = module_config(
        FUSION, names["fusion"], dim=64, num_layers=_FUSION_LAYERS,
        num_heads=4, mlp_dim=128, dropout_rate=0.1)
  else:
    c.model.fusion = module_config(FUSION, names["fusion"])
    if "dropout_rate" in c.model.fusion:
      c.model.fusion.dropout_rate = 0.1
  c.optimizer.learning_rate = 1e-3
  # The recipe its recorded results used (av_digits' default before the
  # CMVN + SpecAugment recipe, which was not measured with Transformers).
  c.modality_dropout.audio = 0.3
  c.num_train_steps = 600
  c.eval_every_steps = 200
  c.checkpoint_every_steps = 200
  c.lock()
  return c
