"""The two digits of an av_digit_clips clip, in order (100 classes), from the
video, the soundtrack, or both (cross-attention with time-aligned
positions), on FSDD's official split (test: takes 0-4 of every speaker,
with test images); configs/av_digit_clips.py, 1,000 steps. Run with
  python experiments/run_sweep.py experiments/modalities/clips_sequence
"""

CONFIG = "configs/av_digit_clips.py"

COMMON = {"eval_splits": ("validation", "test")}

VARIANTS = {
    "video+audio": ("task=sequence", {}),
    "video_only": ("task=sequence,modalities=video", {}),
    "audio_only": ("task=sequence,modalities=audio", {}),
}
UNIMODAL = ("video_only", "audio_only")

PROTOCOLS = {"official": {"official": {}}}
