"""A tiny synthetic image-text dataset and config for the contrastive tests.

Each image (32x32 RGB) shows one filled shape of one colour on one
background colour; its caption names the three ("red circle on black"):
4 x 4 x 4 = 64 distinct captions. Train has every combination 4 times,
validation and test once each (different positions, sizes and pixel
noise), so within an evaluation split every caption is unique and
retrieval has exactly one right answer. `label` is the shape's colour (a
ClassLabel with names), for zero-shot classification.

The captions are tokenised by a tiny WordPiece `BertTokenizerFast` whose
vocabulary is the dataset's words, saved with `save_pretrained` and read
by the `tokenize` pp op as a Hugging Face tokenizer would be.
"""

import itertools
import os
import pathlib

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from configs import base
from mmjax.data.builders.registry import DATASETS
from mmjax.models.registries import ENCODERS, module_config

DATASET = "tiny_shapes_captions"
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60),
           "blue": (50, 80, 230), "yellow": (230, 220, 40)}
BACKGROUNDS = {"black": (10, 10, 10), "white": (245, 245, 245),
               "gray": (128, 128, 128), "purple": (120, 30, 140)}
SHAPES = ("square", "circle", "triangle", "cross")
SIZE = 32
SPLITS = {"train": (4, 0), "validation": (1, 1), "test": (1, 2)}  # (copies, seed)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WORDS = tuple(COLOURS) + SHAPES + ("on",) + tuple(BACKGROUNDS)
MAX_LENGTH = 8  # [CLS] colour shape on background [SEP] + padding


def _shape_mask(shape: str, cy: float, cx: float, r: float) -> np.ndarray:
  y, x = np.mgrid[:SIZE, :SIZE] + 0.5
  dy, dx = y - cy, x - cx
  if shape == "square":
    return (np.abs(dy) <= r * 0.8) & (np.abs(dx) <= r * 0.8)
  if shape == "circle":
    return dy ** 2 + dx ** 2 <= r ** 2
  if shape == "triangle":
    return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.55)
  return (np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r) | (
      (np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r))


def make_examples(copies: int, seed: int):
  """`(key, example)` pairs: every (colour, shape, background) `copies`
  times, at random positions and sizes, with pixel noise."""
  rng = np.random.default_rng(seed)
  key = 0
  for _ in range(copies):
    for colour, shape, background in itertools.product(COLOURS, SHAPES,
                                                       BACKGROUNDS):
      r = rng.uniform(7.0, 10.0)
      cy, cx = rng.uniform(r + 1, SIZE - r - 1, size=2)
      image = np.empty((SIZE, SIZE, 3), np.float32)
      image[:] = BACKGROUNDS[background]
      image[_shape_mask(shape, cy, cx, r)] = COLOURS[colour]
      image += rng.normal(0.0, 12.0, image.shape)
      yield key, {
          "image": np.clip(image, 0, 255).astype(np.uint8),
          "text": f"{colour} {shape} on {background}",
          "label": colour,
      }
      key += 1


class TinyShapesCaptions(tfds.core.GeneratorBasedBuilder):
  """The tiny synthetic image-caption dataset (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="default")]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # As mmjax.data.builders.base: TFDS 4.9.10's own code_path needs
    # `importlib_resources`.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(SIZE, SIZE, 3),
                                         dtype=np.uint8),
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(COLOURS)),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {name: make_examples(copies, seed)
            for name, (copies, seed) in SPLITS.items()}

  def _generate_examples(self):  # pragma: no cover (generators above)
    raise NotImplementedError


def get_builder(data_dir) -> TinyShapesCaptions:
  """The prepared builder in `data_dir` (prepared on the first call)."""
  builder = TinyShapesCaptions(data_dir=os.fspath(data_dir))
  if not builder.is_prepared():
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False))
  return builder


if DATASET not in DATASETS:
  DATASETS.register(DATASET)(lambda data_config: get_builder(
      data_config.data_dir))


def build_tokenizer(directory: pathlib.Path):
  """A WordPiece `BertTokenizerFast` over `WORDS`, saved in `directory`."""
  import transformers  # pylint: disable=g-import-not-at-top
  vocab = {w: i for i, w in enumerate(SPECIAL_TOKENS + WORDS)}
  tokenizer = transformers.BertTokenizerFast(vocab=vocab)
  tokenizer.save_pretrained(str(directory))
  return tokenizer


def tiny_config(data_dir, tokenizer_dir) -> ml_collections.ConfigDict:
  """A small contrastive image-text experiment on this dataset (locked)."""
  c = ml_collections.ConfigDict()
  c.modalities = ("image", "text")
  c.data = ml_collections.ConfigDict({"name": DATASET,
                                      "data_dir": str(data_dir)})
  text_pp = f"tokenize(tokenizer={str(tokenizer_dir)!r}, max_length={MAX_LENGTH})"
  c.pp_train = ml_collections.ConfigDict(
      {"image": "value_range(0, 1)", "text": text_pp})
  c.pp_eval = ml_collections.ConfigDict(
      {"image": "value_range(0, 1)", "text": text_pp})
  c.model = ml_collections.ConfigDict()
  c.model.encoders = ml_collections.ConfigDict({
      "image": module_config(ENCODERS, "cnn", features=(16, 32),
                             embed_dim=32),
      "text": module_config(
          ENCODERS, "text_transformer",
          vocab_size=len(SPECIAL_TOKENS) + len(WORDS), hidden_dim=32,
          num_layers=1, num_heads=2, mlp_dim=64, max_length=MAX_LENGTH,
          type_vocab_size=2),  # BERT tokenizers give token_type_ids
  })
  base.training_recipe(c)
  base.modality_balancing(c)
  c.objective = "contrastive"
  c.model.embed_dim = 32
  c.optimizer.warmup_steps = 10
  c.batch_size = 32
  c.eval_batch_size = 48  # 64 examples -> 2 batches, 32 padding rows
  c.eval_splits = ("validation", "test")
  c.num_train_steps = 200
  c.log_every_steps = 50
  c.eval_every_steps = 100
  c.checkpoint_every_steps = 100
  c.lock()
  return c
