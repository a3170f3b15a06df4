"""Transfer between mmjax runs: a fused model whose encoders start from the
unimodal runs of the same fold, against the same model from scratch.

Leave-one-speaker-out over the five FSDD speakers (train on four, test on the
fifth). Per fold, `image_only` and `audio_only` train first; `early_fusion`
from scratch and `early_fusion_from_unimodal` (both encoders `init_from` those
two runs' final checkpoints) then train with the same 600-step recipe.
Validation accuracy every 100 steps shows how fast each gets there
(analyse.py). The recipe is the plain one of the robustness sweep, so the
effect of the initialisation is not mixed with the anti-laziness training.
Run with
  python experiments/run_sweep.py experiments/transfer
  python experiments/transfer/analyse.py
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "robustness"))
import recipes  # noqa: E402  pylint: disable=g-import-not-at-top

CONFIG = "configs/av_digits.py"

SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")

COMMON = {**recipes.STEPS, **recipes.PLAIN, **recipes.UTTERANCE_NORMALIZATION,
          "eval_every_steps": 100,
          "eval_splits": ("validation", "test")}

FROM_UNIMODAL = {
    "model.encoders.image.init_from": "{runs}/loso/{fold}/image_only",
    "model.encoders.audio.init_from": "{runs}/loso/{fold}/audio_only",
}

VARIANTS = {
    "image_only": ("", {"modalities": ("image",)}),
    "audio_only": ("", {"modalities": ("audio",)}),
    "early_fusion": ("fusion=early_fusion", {}),
    "early_fusion_from_unimodal": ("fusion=early_fusion", FROM_UNIMODAL),
}
UNIMODAL = ("image_only", "audio_only")

PROTOCOLS = {"loso": {s: {"data.test_speakers": (s,)} for s in SPEAKERS}}
