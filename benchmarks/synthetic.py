"""Random batches of a dataset's preprocessed shapes, for benchmarks on
machines without TensorFlow (e.g. the GPU machine)."""

import re

# Model inputs after preprocessing, per example, for --synthetic.
SYNTHETIC_SHAPES = {"av_digits": {"image": ((28, 28, 1), "float32"),
                                  "audio": ((8000,), "float32")}}


def _pp_argument(spec: str, pattern: str, where: str) -> int:
  match = re.search(pattern, spec)
  if not match:
    raise ValueError(f"--synthetic: cannot read the input size of {where}="
                     f"{spec!r} (expected {pattern!r})")
  return int(match.group(1))


def manifest_shapes(config) -> dict:
  """`{modality: shape spec}` of a `multimodal_manifest` config
  (configs/manifest.py, clip_b16.py, mbt_b16.py): images `[S, S, 3]` at
  `data.image_size`, audio `[samples]` of the train spec's
  `pad_or_crop(samples)`, text `{"token_ids", "token_mask"}` `[max_length]`
  of its `tokenize(..., max_length=L)`.

  Raises:
    ValueError: for `data.image_size` 0 (the files' own size), a spec
      without those sizes, or a video modality.
  """
  shapes = {}
  for m in config.modalities:
    if m == "image":
      if not config.data.image_size:
        raise ValueError("--synthetic needs config.data.image_size > 0")
      side = config.data.image_size
      shapes[m] = ((side, side, 3), "float32")
    elif m == "audio":
      shapes[m] = ((_pp_argument(config.pp_train.audio, r"pad_or_crop\((\d+)",
                                 "pp_train.audio"),), "float32")
    elif m == "text":
      length = _pp_argument(config.pp_train.text, r"max_length=(\d+)",
                            "pp_train.text")
      shapes[m] = {"token_ids": ((length,), "int32"),
                   "token_mask": ((length,), "bool")}
    else:
      raise ValueError(f"--synthetic: no synthetic {m} for "
                       f"multimodal_manifest")
  return shapes


def synthetic_shapes(config) -> dict:
  """`{modality: (shape, dtype) or {key: (shape, dtype)}}` per example."""
  if config.data.name == "multimodal_manifest":
    return manifest_shapes(config)
  return SYNTHETIC_SHAPES[config.data.name]


def synthetic_batches(config, num_classes: int):
  """Endless random `{modality: [global_batch, ...], "label"}` batches:
  floats uniform in [-1, 1), token ids uniform in [1, the text encoder's
  vocab_size), token masks all True."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  shapes = synthetic_shapes(config)
  rng = np.random.default_rng(0)

  def draw(m, key, shape, dtype):
    size = (config.batch_size, *shape)
    if dtype == "bool":
      return np.ones(size, bool)
    if dtype == "int32":
      vocab = config.model.encoders[m].vocab_size
      return rng.integers(1, vocab, size).astype(np.int32)
    del key
    return rng.uniform(-1, 1, size).astype(dtype)

  while True:
    batch = {}
    for m, spec in shapes.items():
      if m not in config.modalities:
        continue
      if isinstance(spec, dict):
        batch[m] = {k: draw(m, k, *s) for k, s in spec.items()}
      else:
        batch[m] = draw(m, None, *spec)
    batch["label"] = rng.integers(0, num_classes, config.batch_size).astype(
        np.int32)
    yield batch
