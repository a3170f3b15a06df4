"""Ablation on audio-visual digits: modalities x fusion, two split protocols.

Every run is configs/av_digits.py with the overrides below, trained with the
default recipe (1,200 steps). Superseded by experiments/fusion_ablation (all
fusion blocks, leave-one-speaker-out); kept for its recorded results. Run it
with
  python experiments/run_sweep.py experiments/av_digits_ablation
"""

CONFIG = "configs/av_digits.py"
# The default recipe when this sweep ran (the config now defaults to the
# recipe of experiments/robustness).
COMMON = {
    "num_train_steps": 1200,
    "optimizer.warmup_steps": 100,
    "eval_every_steps": 400,
    "checkpoint_every_steps": 400,
    "modality_dropout.image": 0.0,
    "modality_dropout.audio": 0.0,
    "aux_loss_weight": 0.0,
    "model.encoders.audio.normalization": "utterance",
    "model.encoders.audio.freq_masks": 0,
    "model.encoders.audio.time_masks": 0,
}
VARIANTS = {
    "early_fusion": ("", {}),
    "late_fusion": ("fusion=late_fusion", {}),
    "image_only": ("", {"modalities": ("image",)}),
    "audio_only": ("", {"modalities": ("audio",)}),
}
UNIMODAL = ("image_only", "audio_only")
PROTOCOLS = {
    "official": {"seed0": {}},
    # Speaker-independent: every recording of theo is held out.
    "speaker_theo": {"theo": {"data.test_speakers": ("theo",)}},
}
