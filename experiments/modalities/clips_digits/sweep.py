"""Single-digit encoders for av_digit_clips, one pair per fold.

Stage 1 of the two-stage recipes (experiments/modalities/clips_sync and
clips_sequence, variants `*+digits`): on av_digits with the fold's held-out
speaker (or FSDD's official split) (so no test speaker, recording or image is seen), an image-only CNN
on digits as the clips' frames show them (14 px on a black 32x32 canvas,
`configs/av_digit_clips.PRETRAIN_IMAGE_PP`) and an audio-only log-mel CNN.
The clips' pairs come from the same `make_pairs` split, so each clips fold
trains on exactly these runs' training images and recordings. Run with
  python experiments/run_sweep.py experiments/modalities/clips_digits
"""

CONFIG = "configs/av_digits.py"

SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")

COMMON = {"eval_splits": ("validation", "test"), "aux_loss_weight": 0.0,
          "modality_dropout.image": 0.0, "modality_dropout.audio": 0.0}

VARIANTS = {
    "image": ("", {"modalities": ("image",),
                   # = configs/av_digit_clips.py's PRETRAIN_IMAGE_PP
                   "pp_train.image": ("value_range(0, 1)|resize(14)|"
                                      "pad_to(32, mode='random')"),
                   "pp_eval.image": "value_range(0, 1)|resize(14)|pad_to(32)"}),
    "audio": ("", {"modalities": ("audio",)}),
}
UNIMODAL = ("image", "audio")

PROTOCOLS = {"loso": {s: {"data.test_speakers": (s,)} for s in SPEAKERS},
             "official": {"official": {}}}
