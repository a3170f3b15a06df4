"""Audio-visual digits (MNIST image + FSDD recording of the same digit).

Default: early fusion of an image CNN and a log-mel CNN. Unimodal baselines,
late fusion and the speaker-independent split are the same config with
overrides (see experiments/av_digits_ablation.py):
  --config.modalities="('image',)"
  --config.model.fusion.name=late_fusion
  --config.data.test_speakers="('theo',)"
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The experiment config (locked: unknown override keys are errors)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.modalities = ("image", "audio")

  c.data = ml_collections.ConfigDict()
  c.data.name = "av_digits"
  c.data.manual_dir = ""  # "" -> $MMJAX_MANUAL_DIR, else ../shared/data
  c.data.data_dir = ""  # "" -> $MMJAX_DATA_DIR, else ~/tensorflow_datasets
  c.data.pairing_seed = 0
  c.data.test_speakers = ()  # e.g. ("theo",): speaker-independent split
  c.data.validation_indices = (5, 6, 7, 8, 9)
  c.data.test_indices = (0, 1, 2, 3, 4)
  c.data.image_fractions = (0.625, 0.125, 0.25)  # train, validation, test

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
  c.model.encoders = ml_collections.ConfigDict({
      "image": {"name": "cnn", "features": (16, 32, 64), "embed_dim": 128},
      "audio": {
          "name": "spectrogram_cnn", "features": (16, 32, 64), "embed_dim": 128,
          # 32 ms windows, 16 ms hop at 8 kHz; 40 mel bands up to 4 kHz.
          "frontend": {"features": "log_mel", "sample_rate": 8000,
                       "n_fft": 256, "hop_length": 128, "n_mels": 40},
      },
  })
  c.model.fusion = ml_collections.ConfigDict(
      {"name": "early_fusion", "hidden_dims": (256,), "dropout_rate": 0.2})

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"
  c.optimizer.learning_rate = 2e-3
  c.optimizer.weight_decay = 1e-4
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.momentum = 0.9  # sgd only
  c.optimizer.schedule = "warmup_cosine"
  c.optimizer.warmup_steps = 100
  c.optimizer.end_learning_rate_factor = 0.01
  c.optimizer.grad_clip_norm = 1.0
  c.label_smoothing = 0.0

  c.batch_size = 64  # global batch size, over all devices and hosts
  c.eval_batch_size = 200
  c.eval_splits = ("train", "validation", "test")  # evaluated at the end
  c.num_train_steps = 1200
  c.log_every_steps = 50
  c.eval_every_steps = 400
  c.checkpoint_every_steps = 400
  c.keep_checkpoints = 2

  c.lock()
  return c
