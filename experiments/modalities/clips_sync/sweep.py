"""Audio-video synchronisation on av_digit_clips, leave-one-speaker-out.

Is the soundtrack aligned with the video? Half the clips are negatives:
the audio in other time slots ("shift") or the two spoken digits exchanged
("swap"), so neither stream alone can tell (single-modality models must be
at chance). Fused: cross-attention with time-aligned positions
(configs/av_digit_clips.py, 1,000 steps). Run with
  python experiments/run_sweep.py experiments/modalities/clips_sync
Accuracy per kind of clip: experiments/modalities/clips/by_negative.py.
"""

CONFIG = "configs/av_digit_clips.py"

SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")

COMMON = {"eval_splits": ("validation", "test")}

VARIANTS = {
    "video+audio": ("task=sync", {}),
    "video_only": ("task=sync,modalities=video", {}),
    "audio_only": ("task=sync,modalities=audio", {}),
}
UNIMODAL = ("video_only", "audio_only")

PROTOCOLS = {"loso": {s: {"data.test_speakers": (s,)} for s in SPEAKERS}}
