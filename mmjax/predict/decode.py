"""A row's raw files and texts -> the features the run's dataset stores ->
the model's input, as the evaluation pipeline feeds it.

Decoding gives each modality the feature of the run's dataset
(`builder.info.features[modality]`), with the manifest builder's decoders
(`mmjax.data.builders.manifest.media`): an image of any size and format
Pillow reads, converted to RGB, resized with Pillow's bicubic filter to the
stored height and width when they differ and reduced to one channel
(Pillow's "L") when the dataset stores grey images (av_digits: uint8 [28,
28, 1]); audio of any rate and format soundfile or PyAV (FFmpeg) reads, as
int16 mono at the stored rate (librosa's soxr_hq resampling); a video file
or frame folder at `config.data`'s frame rate and size; a text as one
string (a dataset whose text feature is a dict of names, emoji_image_text,
gets the string itself, which its text ops take as they take zero-shot
class texts). Then the run's `config.pp_eval` ops run through the
pipeline's own `_preprocess_fn` (`mmjax.data.pipeline`, seed 0, the row's
index as the example's position), in a tf.data graph as in evaluation.

A modality whose field is empty is missing: it gets a placeholder of the
stored feature's dtype (zeros, one sample or frame where the length is
free; "" for a text) so that the batch has its shape, and the model's
presence mask is 0 for it.
"""

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mmjax.data import pipeline
from mmjax.data.builders.manifest import media
from mmjax.data.builders.manifest.table import Manifest, Row
from mmjax.data.errors import DataError

Features = Mapping[str, tfds.features.FeatureConnector]


def _is_text(feature: tfds.features.FeatureConnector) -> bool:
  """A text feature: Text, or a dict of texts (emoji_image_text's)."""
  return isinstance(feature, (tfds.features.Text,
                              tfds.features.FeaturesDict))


def tensor_spec(feature: tfds.features.FeatureConnector) -> tf.TensorSpec:
  """The decoded feature's spec as this module feeds it (a text: one
  tf.string scalar)."""
  if _is_text(feature):
    return tf.TensorSpec((), tf.string)
  return feature.get_tensor_spec()


def placeholder(feature: tfds.features.FeatureConnector) -> Any:
  """A missing modality's stand-in: "" for a text, else zeros of the
  stored dtype and shape (a free length 1)."""
  if _is_text(feature):
    return ""
  spec = feature.get_tensor_spec()
  return np.zeros([1 if d is None else d for d in spec.shape],
                  spec.dtype.as_numpy_dtype)


def _image(manifest: Manifest, row: Row,
           feature: tfds.features.Image) -> np.ndarray:
  """uint8 [H, W, C] of the stored shape (C 1 or 3)."""
  import PIL.Image  # pylint: disable=g-import-not-at-top
  height, width, channels = feature.shape
  rgb = media.read_image(manifest, row)
  image = PIL.Image.fromarray(rgb)
  if None not in (height, width) and image.size != (width, height):
    image = image.resize((width, height), PIL.Image.Resampling.BICUBIC)
  if channels == 1:
    return np.asarray(image.convert("L"), np.uint8)[:, :, None]
  return np.asarray(image, np.uint8)


def _audio(manifest: Manifest, row: Row, feature: tfds.features.Audio,
           data: ml_collections.ConfigDict) -> np.ndarray:
  """int16 [samples] at the stored rate: the audio column's file, or
  without one (manifest runs with `data.video_soundtrack`) the video's
  soundtrack."""
  if "audio" in manifest.columns or "video" not in manifest.columns:
    return media.read_audio(manifest, row, feature.sample_rate)
  return media.read_soundtrack(manifest, row, feature.sample_rate,
                               data.get("max_video_seconds", 10.0))


def _video(manifest: Manifest, row: Row, feature: tfds.features.Video,
           data: ml_collections.ConfigDict) -> np.ndarray:
  """uint8 [T, S, S, 3] at `data.frame_rate` Hz."""
  return media.read_video(
      manifest, row, data.get("frame_rate", 8.0), feature.shape[1],
      data.get("max_video_seconds", 10.0), data.get("frame_folder_rate"))


def field(manifest: Manifest, row: Row, modality: str) -> str:
  """The row's field of `modality` ("" when absent or blank; with
  `data.video_soundtrack`, the audio of a row without an audio column is
  its video's)."""
  if modality == "audio" and "audio" not in manifest.columns:
    modality = "video"
  value = row.values.get(modality, "")
  return value if value.strip() else ""


def decode(manifest: Manifest, row: Row, modalities: Sequence[str],
           features: Features, data: ml_collections.ConfigDict
           ) -> Tuple[Dict[str, Any], Dict[str, float]]:
  """The row's stored features and presence.

  Args:
    manifest: the rows (`mmjax.predict.rows`).
    row: one of them.
    modalities: the model's modalities.
    features: the run's dataset features (`builder.info.features`).
    data: the run's `config.data` (video frame rate, clip length).

  Returns:
    (`{modality: stored feature (numpy, or a str for a text)}`,
    `{modality: 1.0 present or 0.0 missing}`).

  Raises:
    DataError: naming the row, column and file that is missing or cannot
      be decoded, or when the row has none of the model's modalities.
  """
  example, present = {}, {}
  for m in modalities:
    feature = features[m]
    if not field(manifest, row, m):
      example[m], present[m] = placeholder(feature), 0.0
      continue
    present[m] = 1.0
    if _is_text(feature):
      example[m] = row.values[m]
    elif isinstance(feature, tfds.features.Image):
      example[m] = _image(manifest, row, feature)
    elif isinstance(feature, tfds.features.Audio):
      example[m] = _audio(manifest, row, feature, data)
    elif isinstance(feature, tfds.features.Video):
      example[m] = _video(manifest, row, feature, data)
    else:
      raise DataError(f"{manifest.where(row, m)}: the run's dataset stores "
                      f"{m} as {type(feature).__name__}, which prediction "
                      f"from files does not decode")
  if not any(present.values()):
    raise DataError(f"{manifest.where(row)}: none of the model's modalities "
                    f"({', '.join(modalities)}) is given")
  return example, present


def preprocess(examples: Sequence[Mapping[str, Any]],
               positions: Sequence[int], modalities: Sequence[str],
               features: Features, pp: Mapping[str, str]
               ) -> List[Dict[str, Any]]:
  """Each decoded example through the run's eval pp ops, as
  `mmjax.data.pipeline.eval_batches` applies them (`_preprocess_fn`, seed
  0, `positions[i]` the position that seeds example i's random ops).

  Args:
    examples: `decode`'s stored features, one dict per example.
    positions: one int per example.
    modalities: the model's modalities.
    features: the run's dataset features.
    pp: the run's bound `config.pp_eval` (`{modality: spec}`, optionally
      `"example"`).

  Returns:
    One `{modality: numpy model input}` per example (a text modality may be
    a dict, e.g. token_ids and token_mask).
  """
  signature = {m: tensor_spec(features[m]) for m in modalities}
  signature["label"] = tf.TensorSpec((), tf.int64)

  def generate():
    for position, example in zip(positions, examples):
      yield np.int64(position), {**example, "label": np.int64(0)}

  ds = tf.data.Dataset.from_generator(
      generate, output_signature=(tf.TensorSpec((), tf.int64), signature))
  ds = ds.map(pipeline._preprocess_fn(modalities, dict(pp), seed=0))  # pylint: disable=protected-access
  return [{m: out[m] for m in modalities} for out in ds.as_numpy_iterator()]
