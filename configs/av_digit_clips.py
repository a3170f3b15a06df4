"""Audio-visual digit clips (`av_digit_clips`): two MNIST digits, each
bouncing in a 64x64 frame while its FSDD recording is spoken, 2 s at 8
frames/s with an 8 kHz soundtrack (mmjax/data/builders/av_digit_clips.py).

Tasks (config-file argument `task`):
  sync      is the soundtrack aligned with the video (2 classes)? Negatives
            have the audio in other time slots or the two spoken digits
            swapped, so neither stream alone can tell: it needs both.
  sequence  the two digits in order (100 classes), every clip aligned.

Default: video + audio fused by cross-attention (MulT) whose positional
encodings are the tokens' times in seconds, so a head can attend to the same
moment in the other stream. 8 frames are sampled every 2nd frame (4 frames/s,
a random start when training, the centred window when evaluating) and the
same 2 s window is cut from the soundtrack (`sample_clip`).

  --config=configs/av_digit_clips.py                          # sync, fused
  --config=configs/av_digit_clips.py:task=sequence,modalities=video
  --config=configs/av_digit_clips.py:video=vivit \
      --config.optimizer.learning_rate=3e-4 --config.optimizer.warmup_steps=200
  --config=configs/av_digit_clips.py:task=sequence,video=vivit
  --config=configs/av_digit_clips.py:shift_ms=250   # soundtrack 250 ms late
  --config.data.test_speakers="('theo',)"            # leave theo out

ViViT on sync needs the lower rate shown: with this config's 1e-3 it stays
at chance (0.477 on the validation speaker george, 0.795 at 3e-4 with 200
warm-up steps). On sequence the config's rate is the better one (0.261
against 0.109). experiments/zoo, section clips_selection.
"""

from typing import Optional

import ml_collections

from configs import av_digits
from configs import base
from mmjax.models.registries import ENCODERS, FUSION, module_config

FRAME_RATE = 8.0  # stored frames per second
NUM_FRAMES, STRIDE = 8, 2  # sampled: 4 frames/s over 2 s
SAMPLED_FRAME_RATE = FRAME_RATE / STRIDE
FRAME_SIZE = 32  # the 64x64 frames are resized to this in the pipeline
NUM_CLASSES = {"sync": 2, "sequence": 100}

# The per-frame CNN and the audio CNN have av_digits' sizes, so they can
# start from the encoders of av_digits runs (`image_encoder.init_from`,
# `audio.init_from`; digits as the frames show them: `PRETRAIN_IMAGE_PP`).
_ENCODERS = {
    "frame_encoder": {
        "image_encoder": {"name": "cnn", "features": (16, 32, 64),
                          "embed_dim": 128, "init_from": ""},
        "temporal": "transformer", "dim": 64, "num_layers": 1,
        "num_heads": 4, "mlp_dim": 128, "frame_rate": SAMPLED_FRAME_RATE},
    "vivit": {"patch_size": 8, "tubelet_size": 1, "hidden_dim": 64,
              "spatial_layers": 2, "temporal_layers": 1, "num_heads": 4,
              "mlp_dim": 128, "frame_rate": SAMPLED_FRAME_RATE},
    "spectrogram_cnn": {"features": (16, 32, 64), "embed_dim": 128,
                        "frontend": av_digits.AUDIO_FRONTEND},
}
# av_digits' 28x28 digits at the size they have in the resized frames
# (64 -> FRAME_SIZE), placed on a black FRAME_SIZE canvas like a clip's
# frame (at random in training): the image pp of the av_digits runs whose
# CNN initialises the frame encoder. On the clips' own scale and canvas the
# frame encoder learns the video sequence task faster (validation 0.606 vs
# 0.432 after 500 steps with a CNN pretrained on the bare 14x14 digits).
PRETRAIN_IMAGE_PP = {
    "pp_train.image": (f"value_range(0, 1)|resize({28 * FRAME_SIZE // 64})|"
                       f"pad_to({FRAME_SIZE}, mode='random')"),
    "pp_eval.image": (f"value_range(0, 1)|resize({28 * FRAME_SIZE // 64})|"
                      f"pad_to({FRAME_SIZE})"),
}


def encoder_config(name: str) -> ml_collections.ConfigDict:
  """The registered encoder's defaults with this dataset's sizes."""
  return module_config(ENCODERS, name, **_ENCODERS.get(name, {}))


def data_config(task: str) -> ml_collections.ConfigDict:
  """av_digits' split protocol (official split or leave-one-speaker-out),
  the task, and how the clips are made
  (mmjax/data/builders/av_digit_clips.py)."""
  d = av_digits.data_config()
  d.name = "av_digit_clips"
  d.task = task
  d.clips_per_pair = 2  # each (image, recording) pair appears in 2 clips
  d.swap_fraction = 0.5  # sync negatives with the spoken digits swapped
  return d


def pp_configs(shift_ms: float = 0.0):
  """(pp_train, pp_eval): the aligned clip window (shifted by `shift_ms`),
  frames resized to FRAME_SIZE in [0, 1], audio as float with a random gain
  in training."""
  shift = f"shift_soundtrack({shift_ms})|" if shift_ms else ""
  clip = (f"sample_clip({NUM_FRAMES}, {STRIDE}, frame_rate={FRAME_RATE}, "
          "sample_rate=8000, mode={!r})")
  video = f"video_value_range(0, 1)|video_resize({FRAME_SIZE})"
  pp_train = ml_collections.ConfigDict({
      "example": shift + clip.format("random"), "video": video,
      "audio": "to_float|random_gain(6)"})
  pp_eval = ml_collections.ConfigDict({
      "example": shift + clip.format("center"), "video": video,
      "audio": "to_float"})
  return pp_train, pp_eval


DIGITS_LEARNING_RATE_SCALE = 0.1


def _init_from_digits(c: ml_collections.ConfigDict, digits: str) -> None:
  """The encoders of `c` start from the single-digit runs in `digits`."""
  if "video" in c.modalities and "image_encoder" in c.model.encoders.video:
    c.model.encoders.video.image_encoder.init_from = f"{digits}/image"
    c.model.encoders.video.learning_rate_scale = DIGITS_LEARNING_RATE_SCALE
  if "audio" in c.modalities:
    c.model.encoders.audio.init_from = f"{digits}/audio"
    c.model.encoders.audio.learning_rate_scale = DIGITS_LEARNING_RATE_SCALE


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked).

  Args:
    arg: `task=<sync|sequence>,modalities=<video|audio|video+audio>,
      fusion=<block>,video=<encoder>,audio=<encoder>,shift_ms=<ms>,
      digits=<dir>` (any subset; a bare value is the task). `digits` names
      the folder of a clips_digits fold (`<dir>/image`, `<dir>/audio`: runs
      of experiments/modalities/clips_digits on the same split), whose
      encoders then initialise the per-frame CNN and the audio CNN, fine-
      tuned at `DIGITS_LEARNING_RATE_SCALE` of the learning rate (the two-
      stage recipe of experiments/modalities/RESULTS.md).

  Raises:
    ValueError: for an unknown task.
  """
  names = base.parse_arg(arg, task="sync", modalities="video+audio",
                         fusion="cross_attention", video="frame_encoder",
                         audio="spectrogram_cnn", shift_ms="0", digits="")
  if names["task"] not in NUM_CLASSES:
    raise ValueError(f"config argument task={names['task']!r}: expected one "
                     f"of {sorted(NUM_CLASSES)}")
  c = ml_collections.ConfigDict()
  c.modalities = tuple(names["modalities"].split("+"))
  c.data = data_config(names["task"])
  c.pp_train, c.pp_eval = pp_configs(float(names["shift_ms"]))
  c.model = ml_collections.ConfigDict()
  c.model.num_classes = NUM_CLASSES[names["task"]]
  c.model.encoders = ml_collections.ConfigDict(
      {m: encoder_config(names[m]) for m in ("video", "audio")})
  c.model.fusion = module_config(FUSION, names["fusion"])
  for key, value in {"positional_embedding": "time", "dim": 64,
                     "num_layers": 1, "mlp_dim": 128,
                     "dropout_rate": 0.1}.items():
    if key in c.model.fusion:
      c.model.fusion[key] = value
  if "step_seconds" in c.model.fusion:  # time_aligned: a step per spoken digit
    c.model.fusion.num_layers = 2
    c.model.fusion.step_seconds = 0.5
  if names["digits"]:
    _init_from_digits(c, names["digits"])
  base.training_recipe(c)
  base.modality_balancing(c)
  c.batch_size = 32
  c.eval_batch_size = 100
  c.num_train_steps = 1000
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 100
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  c.lock()
  return c
