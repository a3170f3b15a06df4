"""Ablation on audio-visual digits: modalities x fusion, two split protocols.

Every run is configs/av_digits.py with the overrides below, trained with the
same recipe (steps, optimizer, batch size). Run it with
  python experiments/run_sweep.py experiments/av_digits_ablation
"""

CONFIG = "configs/av_digits.py"

_VARIANTS = {
    "early_fusion": {},
    "late_fusion": {"model.fusion.name": "late_fusion"},
    "image_only": {"modalities": ("image",)},
    "audio_only": {"modalities": ("audio",)},
}
# Speaker-independent protocol: every recording of one speaker is held out.
_HELD_OUT_SPEAKER = "theo"

RUNS = {
    **{f"official/{name}": overrides for name, overrides in _VARIANTS.items()},
    **{f"speaker_{_HELD_OUT_SPEAKER}/{name}": {
        **overrides, "data.test_speakers": (_HELD_OUT_SPEAKER,)}
       for name, overrides in _VARIANTS.items()},
}
