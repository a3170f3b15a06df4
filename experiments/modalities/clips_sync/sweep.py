"""Audio-video synchronisation on av_digit_clips, leave-one-speaker-out.

Is the soundtrack aligned with the video? Half the clips are negatives:
the audio in other time slots ("shift") or the two spoken digits exchanged
("swap"), so neither stream alone can tell (single-modality models must be
at chance). Fused: cross-attention with time-aligned positions
(configs/av_digit_clips.py, 1,000 steps), and the two-stage recipe
`time_aligned+digits` (needs experiments/modalities/clips_digits first).
Run with
  python experiments/run_sweep.py experiments/modalities/clips_digits --only 'loso/*'
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

# Two-stage recipe: the fold's single-digit encoders (experiments/modalities/
# clips_digits, run first with its default workdir), fine-tuned at a tenth
# of the learning rate under `time_aligned` fusion over 0.5 s steps (a
# spoken digit's length), so the identities the encoders already read are
# compared moment by moment.
VARIANTS["time_aligned+digits"] = ("task=sync,fusion=time_aligned", {
    "model.fusion.num_layers": 2,
    "model.fusion.step_seconds": 0.5,
    "model.encoders.video.image_encoder.init_from":
        "runs/clips_digits/loso/{fold}/image",
    "model.encoders.audio.init_from": "runs/clips_digits/loso/{fold}/audio",
    "model.encoders.video.learning_rate_scale": 0.1,
    "model.encoders.audio.learning_rate_scale": 0.1,
})
