"""Classification of your own data, listed in a manifest
(`multimodal_manifest`, see mmjax/data/manifest.py).

The modalities are the manifest's modality columns (any of image, audio,
text), read from it here, and the number of classes its distinct labels:

  --config=configs/manifest.py:manifest=/data/pets/data.csv
  --config=configs/manifest.py:manifest=/data/pets.jsonl,fusion=late_fusion,text=gru

Encoders: image `cnn` on images resized to 64 x 64 at preparation
(`data.image_size`; 0 keeps the files' own size, which they must then
share), audio `spectrogram_cnn` on 1 s (8000 samples at 8000 Hz; longer
recordings are cropped, shorter ones zero-padded), text `bag_of_embeddings`
over a byte-level BPE tokenizer trained on the train split's texts when the
dataset is prepared (`{dataset_dir}/tokenizer`, at most 8,000 tokens, 32
tokens per text). Changing `data.sample_rate` also needs the audio pp
specs' `pad_or_crop(...)` and the encoder's `frontend.sample_rate` changed.

Without a `manifest`, `get_config()` still builds (for the config smoke
tests: modalities `DEFAULT_MODALITIES`, `DEFAULT_NUM_CLASSES` classes), but
launching it fails with an error asking for `manifest=...`.
"""

from typing import Optional

import ml_collections

from configs import av_digits
from configs import base
from mmjax.data import manifest as manifest_lib
from mmjax.models import multimodal  # noqa: F401  (registers every block)
from mmjax.models.registries import ENCODERS, FUSION, module_config

DEFAULT_MODALITIES = ("image", "text")
DEFAULT_NUM_CLASSES = 2
IMAGE_SIZE = 64
SAMPLE_RATE = 8000
MAX_TOKENS = 32
VOCAB_SIZE = manifest_lib.VOCAB_SIZE
TOKENIZE = (f'tokenize(tokenizer="{{dataset_dir}}/tokenizer", '
            f"max_length={MAX_TOKENS})")

_TEXT_ENCODERS = base.text_encoder_sizes(VOCAB_SIZE, MAX_TOKENS)


def encoder_config(modality: str, name: str) -> ml_collections.ConfigDict:
  """The registered encoder's defaults with sizes for this data: av_digits'
  image and audio sizes (its 8 kHz log-mel front end), and a text encoder
  over the prepared tokenizer's vocabulary."""
  if modality == "text":
    return module_config(ENCODERS, name, **_TEXT_ENCODERS.get(name, {}))
  return av_digits.encoder_config(name)


def data_config(manifest: str) -> ml_collections.ConfigDict:
  """The `multimodal_manifest` dataset (see mmjax/data/datasets.py)."""
  d = ml_collections.ConfigDict()
  d.name = "multimodal_manifest"
  d.manifest = manifest  # "" fails at launch: a manifest is needed
  d.data_dir = ""  # "" -> $MMJAX_DATA_DIR, else ~/tensorflow_datasets
  d.image_size = IMAGE_SIZE  # 0: keep the images' own (common) size
  d.sample_rate = SAMPLE_RATE
  d.split_fractions = (0.8, 0.1, 0.1)  # without a split column, per label
  d.split_seed = 0
  return d


def pp_configs():
  """(pp_train, pp_eval) for every modality: images in [0, 1]; audio as
  float in [-1, 1), 1 s long (a random window in training, the middle at
  evaluation); texts tokenized with the dataset's own tokenizer."""
  pp_train = ml_collections.ConfigDict({
      "image": "value_range(0, 1)",
      "audio": f"to_float|pad_or_crop({SAMPLE_RATE}, mode='random')",
      "text": TOKENIZE})
  pp_eval = ml_collections.ConfigDict({
      "image": "value_range(0, 1)",
      "audio": f"to_float|pad_or_crop({SAMPLE_RATE}, mode='center')",
      "text": TOKENIZE})
  return pp_train, pp_eval


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked).

  Args:
    arg: `manifest=<path>,fusion=<block>,image=<encoder>,audio=<encoder>,
      text=<encoder>` (any subset; a bare value is the manifest; the path
      cannot hold a comma).

  Raises:
    mmjax.data.errors.DataError: for a manifest that is missing or
      malformed (see `mmjax.data.manifest.read_manifest`).
  """
  names = base.parse_arg(arg, manifest="", fusion="early_fusion", image="cnn",
                         audio="spectrogram_cnn", text="bag_of_embeddings")
  manifest = names["manifest"]
  if manifest:
    parsed = manifest_lib.read_manifest(manifest)
    modalities, num_classes = parsed.modalities, len(parsed.labels)
    manifest = str(parsed.path)  # Absolute: the run may start elsewhere.
  else:
    modalities, num_classes = DEFAULT_MODALITIES, DEFAULT_NUM_CLASSES
  c = ml_collections.ConfigDict()
  c.modalities = modalities
  c.data = data_config(manifest)
  pp_train, pp_eval = pp_configs()
  c.pp_train = ml_collections.ConfigDict({m: pp_train[m] for m in modalities})
  c.pp_eval = ml_collections.ConfigDict({m: pp_eval[m] for m in modalities})
  c.model = ml_collections.ConfigDict()
  c.model.num_classes = num_classes
  c.model.encoders = ml_collections.ConfigDict(
      {m: encoder_config(m, names[m]) for m in modalities})
  c.model.fusion = module_config(FUSION, names["fusion"])
  if "dropout_rate" in c.model.fusion:
    c.model.fusion.dropout_rate = 0.2
  base.training_recipe(c)
  base.modality_balancing(c)
  c.lock()
  return c
