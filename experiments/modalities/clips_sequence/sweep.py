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

# Two-stage: the encoders start from single-digit runs on the same split
# (experiments/modalities/clips_digits, protocol "official", run first with
# its default workdir) and are fine-tuned at a tenth of the learning rate.
_DIGITS = "runs/clips_digits/official/official"
_VIDEO_INIT = {"model.encoders.video.image_encoder.init_from": f"{_DIGITS}/image",
               "model.encoders.video.learning_rate_scale": 0.1}
_AUDIO_INIT = {"model.encoders.audio.init_from": f"{_DIGITS}/audio",
               "model.encoders.audio.learning_rate_scale": 0.1}
VARIANTS.update({
    "video+audio+digits": ("task=sequence", {**_VIDEO_INIT, **_AUDIO_INIT}),
    "time_aligned+digits": ("task=sequence,fusion=time_aligned", {
        **_VIDEO_INIT, **_AUDIO_INIT, "model.fusion.num_layers": 2,
        "model.fusion.step_seconds": 0.5}),
    "video_only+digits": ("task=sequence,modalities=video", _VIDEO_INIT),
    "audio_only+digits": ("task=sequence,modalities=audio", _AUDIO_INIT),
})
UNIMODAL = UNIMODAL + ("video_only+digits", "audio_only+digits")
