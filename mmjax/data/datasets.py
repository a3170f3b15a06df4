"""Dataset registry: `config.data.name` -> a prepared TFDS builder.

Importing this module also registers the text pp ops of
`mmjax.data.text_ops` (`select_text`, `random_text`), so that the configs of
the datasets below can name them.
"""

import jax
from jax.experimental import multihost_utils
import ml_collections
import tensorflow_datasets as tfds

from mmjax.data import text_ops  # noqa: F401  (registers its pp ops)
from mmjax.registry import Registry

DATASETS = Registry("dataset")


def get_builder(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Prepares (once) and returns the TFDS builder named by `data_config.name`.

  With several processes, process 0 prepares a missing dataset while the
  others wait at a barrier, then they open it: prepared once on a data dir
  all hosts share, or once per host on host-local data dirs, never by two
  processes writing the same folder.

  Raises:
    KeyError: for an unknown dataset name.
    mmjax.data.errors.DataError: when the raw files are missing or malformed.
  """
  make = DATASETS.get(data_config.name)
  if jax.process_count() == 1:
    return make(data_config)
  builder = make(data_config) if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices(f"mmjax: {data_config.name} prepared")
  return builder or make(data_config)


@DATASETS.register("av_digits")
def _av_digits(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  from mmjax.data import av_digits, splits  # pylint: disable=g-import-not-at-top
  spec = splits.SplitSpec(
      seed=data_config.pairing_seed,
      test_speakers=tuple(data_config.test_speakers),
      validation_indices=tuple(data_config.validation_indices),
      test_indices=tuple(data_config.test_indices),
      image_fractions=tuple(data_config.image_fractions),
      validation_speakers=tuple(data_config.get("validation_speakers", ())))
  return av_digits.get_builder(
      av_digits.resolve_manual_dir(data_config.manual_dir),
      av_digits.resolve_data_dir(data_config.data_dir), spec)


@DATASETS.register("av_digit_clips")
def _av_digit_clips(
    data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """`mmjax.data.av_digit_clips`: two-digit Moving-MNIST clips (video) with
  FSDD soundtracks (audio), 2 s, 16 frames of 64x64, 16000 samples.

  Keys of `data_config` (all but `name` optional):
    manual_dir, data_dir: as for `av_digits` ("" or None -> MMJAX_MANUAL_DIR
      / MMJAX_DATA_DIR, else ../shared/data / ~/tensorflow_datasets).
    pairing_seed, test_speakers, validation_indices, test_indices,
      image_fractions, validation_speakers: the `splits.SplitSpec`, as for
      `av_digits` (defaults: SplitSpec's, the official split, seed 0).
    task: "sequence" (label 10 * d1 + d2, 100 classes) or "sync" (label 1
      if audio and video are synchronized, else 0) (default "sequence").
    clips_per_pair: rounds over each split's image-recording pairs; each
      round makes len(pairs) // 2 clips (default 2).
    swap_fraction: share in [0, 1] of the "sync" negatives whose spoken
      digits are swapped rather than shifted to other slots (default 0.5).
  Each combination is prepared once into its own config directory.

  Raises:
    ValueError: naming a bad task, clips_per_pair or swap_fraction.
  """
  from mmjax.data import av_digit_clips, splits  # pylint: disable=g-import-not-at-top
  default = splits.SplitSpec()
  spec = splits.SplitSpec(
      seed=data_config.get("pairing_seed", default.seed),
      test_speakers=tuple(data_config.get("test_speakers", ())),
      validation_indices=tuple(data_config.get("validation_indices",
                                               default.validation_indices)),
      test_indices=tuple(data_config.get("test_indices",
                                         default.test_indices)),
      image_fractions=tuple(data_config.get("image_fractions",
                                            default.image_fractions)),
      validation_speakers=tuple(data_config.get("validation_speakers", ())))
  return av_digit_clips.get_builder(
      data_config.get("manual_dir"), data_config.get("data_dir"), spec,
      task=data_config.get("task", "sequence"),
      clips_per_pair=data_config.get("clips_per_pair", 2),
      swap_fraction=data_config.get("swap_fraction", 0.5))


@DATASETS.register("emoji_image_text")
def _emoji_image_text(
    data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """`mmjax.data.emoji`: emoji pictures and their CLDR names (image + text).

  Keys of `data_config` (all but `name` optional):
    manual_dir: the raw files (emoji/ of ../shared/data); "" or None ->
      MMJAX_MANUAL_DIR, else <repo>/../shared/data.
    data_dir: TFDS data directory; "" or None -> MMJAX_DATA_DIR, else
      ~/tensorflow_datasets.
    image_size: S of the images uint8 [S, S, 3] (default 64).
    split_fractions: (train, validation, test) of the emoji, per subgroup,
      split by base emoji (default (0.7, 0.1, 0.2)).
    split_seed: the split's seed (default 0).
    vocab_size: the vocabulary size of the byte-level BPE tokenizer trained
      on the train split and saved in `{dataset_dir}/tokenizer` (default
      8000).
  Each combination is prepared once into its own config directory.
  """
  from mmjax.data import emoji  # pylint: disable=g-import-not-at-top
  return emoji.get_builder(
      data_config.get("manual_dir"), data_config.get("data_dir"),
      image_size=data_config.get("image_size", 64),
      split_fractions=tuple(data_config.get("split_fractions",
                                            (0.7, 0.1, 0.2))),
      split_seed=data_config.get("split_seed", 0),
      vocab_size=data_config.get("vocab_size", 8000))


@DATASETS.register("multimodal_manifest")
def _multimodal_manifest(
    data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """`mmjax.data.manifest`: the user's own examples, listed in a CSV or
  JSON-lines manifest with one column per modality (image, audio, text,
  video), a `label` and an optional `split`.

  Keys of `data_config` (all but `name` and `manifest` optional):
    manifest: path of the `.csv` / `.jsonl` manifest (required; file paths
      in it are relative to its folder).
    data_dir: TFDS data directory; "" or None -> MMJAX_DATA_DIR, else
      ~/tensorflow_datasets.
    image_size: S to resize the images to uint8 [S, S, 3] with Pillow; 0 or
      None keeps the files' own size, which all images must then share
      (default None).
    sample_rate: Hz of the stored int16 audio; files at another rate are
      resampled (default 8000).
    split_fractions: (train, validation, test) of each label's rows when
      the manifest has no `split` column (default (0.8, 0.1, 0.1)).
    split_seed: the seed of that stratified split (default 0).
    frame_rate: frames per second of the stored videos (default 8).
    video_size: S of the stored uint8 [T, S, S, 3] videos (default 64).
    max_video_seconds: videos are cut to their first this many seconds
      (default 10).
    frame_folder_rate: frames per second of a folder of frame images; 0 or
      None: `frame_rate` (default None).
    video_soundtrack: with a video column and no audio column, the audio is
      the video files' soundtracks when every one has an audio stream
      (none has: no audio; some have: a DataError) (default True).
    bad_examples: "fail" (default) or "skip": a row whose file is missing
      or cannot be decoded is an error naming the file, or is left out and
      counted (`mmjax.data.manifest.BAD_EXAMPLES`).
  Each manifest content (and the sizes and times of its files) and each
  combination of settings is prepared once into its own config directory.

  Raises:
    ValueError: naming `config.data.manifest` when it is empty.
  """
  from mmjax.data import manifest  # pylint: disable=g-import-not-at-top
  if not data_config.get("manifest"):
    raise ValueError(
        "config.data.manifest is empty: name your manifest in the "
        "config-file argument, e.g. --config "
        "configs/manifest.py:manifest=/path/to/data.csv (which also reads "
        "its modalities and number of classes).")
  return manifest.get_builder(
      data_config.manifest, data_config.get("data_dir"),
      image_size=data_config.get("image_size") or None,
      sample_rate=data_config.get("sample_rate", 8000),
      split_fractions=tuple(data_config.get("split_fractions",
                                            (0.8, 0.1, 0.1))),
      split_seed=data_config.get("split_seed", 0),
      frame_rate=data_config.get("frame_rate", 8.0),
      video_size=data_config.get("video_size", 64),
      max_video_seconds=data_config.get("max_video_seconds", 10.0),
      frame_folder_rate=data_config.get("frame_folder_rate") or None,
      video_soundtrack=data_config.get("video_soundtrack", True),
      bad_examples=data_config.get("bad_examples", "fail"))
