"""Audio-visual digits (MNIST image + FSDD recording of the same digit).

Default: early fusion of an image CNN and a log-mel CNN, trained 1,200
steps with modality dropout (image 0.3, audio 0.5), unimodal auxiliary
heads, per-band log-mel normalisation (CMVN) and SpecAugment: the recipe
chosen on a validation speaker that beat image only on every held-out
speaker (0.9935 mean leave-one-speaker-out, experiments/robustness).
Any registered fusion block or encoder is chosen with the config-file
argument, and its own attributes become config keys:

  --config=configs/av_digits.py:fusion=cross_attention \
      --config.model.fusion.num_heads=2
  --config=configs/av_digits.py:fusion=late_fusion,image=resnet

Unimodal baselines and the speaker-independent split are overrides:
  --config.modalities="('image',)"
  --config.data.test_speakers="('theo',)"
"""

from typing import Optional

import ml_collections

from configs import base
from mmjax.models.registries import ENCODERS, FUSION, module_config

# 32 ms windows, 16 ms hop at 8 kHz; 40 mel bands up to 4 kHz.
AUDIO_FRONTEND = {"features": "log_mel", "sample_rate": 8000, "n_fft": 256,
                  "hop_length": 128, "n_mels": 40}

# Sizes for this dataset where they differ from an encoder's defaults.
_ENCODER_OVERRIDES = {
    "cnn": {"features": (16, 32, 64), "embed_dim": 128},
    "spectrogram_cnn": {"features": (16, 32, 64), "embed_dim": 128,
                        "frontend": AUDIO_FRONTEND},
    "spectrogram_transformer": {"frontend": AUDIO_FRONTEND},
    # Whisper's front end reads the 8000 samples (1 s at 8 kHz) as 0.5 s at
    # 16 kHz: 50 frames, a window of 25 positions instead of 30 s.
    "whisper_encoder": {"max_source_positions": 25},
}


# The corruption families a recipe may train with (corruption augmentation,
# `config.corruption_augmentation`); every other family of
# mmjax.analysis.corruptions is held out, for evaluation only. Of each kind
# of ImageNet-C family (noise, blur, digital) and of the audio ones, some
# are trained with and some held out: the held-out ones measure whether a
# recipe survives corruptions it never saw.
CORRUPTION_TRAIN_FAMILIES = (
    "image_gaussian_noise", "image_defocus_blur", "image_contrast",
    "image_jpeg", "image_occlusion",
    "audio_white_noise", "audio_babble_noise", "audio_clipping",
    "audio_time_mask")


def encoder_config(name: str) -> ml_collections.ConfigDict:
  """The registered encoder's defaults with this dataset's sizes."""
  return module_config(ENCODERS, name, **_ENCODER_OVERRIDES.get(name, {}))


def data_config() -> ml_collections.ConfigDict:
  """The av_digits dataset and its split protocol (see
  mmjax/data/builders/splits.py)."""
  d = ml_collections.ConfigDict()
  d.name = "av_digits"
  d.manual_dir = ""  # "" -> $MMJAX_MANUAL_DIR, else ../shared/data
  d.data_dir = ""  # "" -> $MMJAX_DATA_DIR, else ~/tensorflow_datasets
  d.pairing_seed = 0
  d.test_speakers = ()  # e.g. ("theo",): speaker-independent split
  d.validation_indices = (5, 6, 7, 8, 9)
  # e.g. ("george",): validation on a speaker no model trains on (then
  # validation_indices is ignored), to select recipes for new speakers.
  d.validation_speakers = ()
  d.test_indices = (0, 1, 2, 3, 4)
  d.image_fractions = (0.625, 0.125, 0.25)  # train, validation, test
  return d


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked: unknown override keys are errors).

  Args:
    arg: `fusion=<block>,image=<encoder>,audio=<encoder>` (any subset; a
      bare name is the fusion block).
  """
  names = base.parse_arg(arg, fusion="early_fusion", image="cnn",
                         audio="spectrogram_cnn")
  c = ml_collections.ConfigDict()
  c.modalities = ("image", "audio")
  c.data = data_config()

  c.pp_train = ml_collections.ConfigDict({
      "image": "value_range(0, 1)|random_translate(2)",
      "audio": "to_float|pad_or_crop(8000, mode='random')|random_gain(6)",
  })
  c.pp_eval = ml_collections.ConfigDict({
      "image": "value_range(0, 1)",
      "audio": "to_float|pad_or_crop(8000, mode='center')",
  })

  c.model = ml_collections.ConfigDict()
  c.model.num_classes = 10
  c.model.encoders = ml_collections.ConfigDict(
      {m: encoder_config(names[m]) for m in ("image", "audio")})
  c.model.fusion = module_config(FUSION, names["fusion"])
  if "dropout_rate" in c.model.fusion:
    c.model.fusion.dropout_rate = 0.2

  base.training_recipe(c)
  base.modality_balancing(c)
  # For new speakers, chosen on a held-out validation speaker and measured
  # leave-one-speaker-out (experiments/robustness): the audio dropped for
  # half the examples and the image for 30% (so the fusion head does not
  # trust an unheard voice too much), a unimodal auxiliary head per
  # modality, and audio features that generalise across voices.
  c.modality_dropout.image = 0.3
  c.modality_dropout.audio = 0.5
  c.aux_loss_weight = 1.0
  audio = c.model.encoders.audio
  if "normalization" in audio:  # the spectrogram encoders
    audio.normalization = "band"
    audio.freq_masks = 2
    audio.time_masks = 2
  c.corruption_augmentation.families = CORRUPTION_TRAIN_FAMILIES
  c.num_train_steps = 1200
  c.optimizer.warmup_steps = 50
  c.eval_every_steps = 400
  c.checkpoint_every_steps = 400
  c.lock()
  return c
