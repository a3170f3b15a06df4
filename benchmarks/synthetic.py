"""Random batches of a dataset's preprocessed shapes, for benchmarks on
machines without TensorFlow (e.g. the GPU machine)."""


# Model inputs after preprocessing, per example, for --synthetic.
SYNTHETIC_SHAPES = {"av_digits": {"image": ((28, 28, 1), "float32"),
                                  "audio": ((8000,), "float32")}}


def synthetic_batches(config, num_classes: int):
  """Endless random `{modality: [global_batch, ...], "label"}` batches."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  shapes = SYNTHETIC_SHAPES[config.data.name]
  rng = np.random.default_rng(0)
  while True:
    batch = {m: rng.uniform(-1, 1, (config.batch_size, *shape)).astype(dtype)
             for m, (shape, dtype) in shapes.items() if m in config.modalities}
    batch["label"] = rng.integers(0, num_classes, config.batch_size).astype(
        np.int32)
    yield batch
