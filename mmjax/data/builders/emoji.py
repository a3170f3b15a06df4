"""emoji_image_text: emoji pictures with their names in many languages (TFDS).

One example per fully-qualified emoji of Unicode's `emoji-test.txt` (the
"Component" group aside): its Noto Color Emoji picture and its CLDR short
names. For image-text tasks: classifying an emoji's subgroup or group from
its picture, its text or both, and CLIP-style image-text retrieval on emoji
held out from training. Nothing is downloaded; the raw files are read from
the manual directory (see `emoji_sources.LAYOUT` and
../shared/data/README.md, emoji/). This module is the TFDS builder, its
config, the split and the tokenizer; reading the raw files (sources, how
names are chosen per locale, rendering, the base-emoji rule) is
`mmjax.data.builders.emoji_sources`.

Features per example:
  image: uint8 [S, S, 3], S = `image_size` (default 64): the glyph rendered
    by `emoji_sources.Renderer` (136 x 128 em box, on white, padded to a
    square, Lanczos-resized; stored as PNG).
  text: the example's texts, one dict (the config's text modality is thus
    called "text"; a pp op sees the whole dict, so it can pick by locale):
    names: tf.string [n], the short names, one per locale (n >= 1; see
      `emoji_sources.names_by_locale`: "en" first, then the other locales
      sorted, each file's own names, not inherited from parent locales);
      stored as a 1-D string Tensor feature, read as a Sequence(Text())
      would be but encoded at once, which is faster (benchmarks/RESULTS.md,
      "Notes moved out of code").
    locales: tf.string [n], the CLDR locale id of each name, e.g. "fr_CA".
    name_en: tf.string [], `emoji-test.txt`'s English name, e.g. "grinning
      face" (also `names[0]`).
  label: int64, the subgroup (ClassLabel, names = subgroup names in file
    order, e.g. "face-smiling").
  group: int64, the group (ClassLabel, e.g. "Smileys & Emotion").
  emoji: tf.string, the emoji (UTF-8, with its U+FE0F as in the file).
  base_emoji: tf.string, `emoji_sources.base_emoji(emoji)`, the key of the
    split.

Locales are listed in sorted order; locale files without a usable name of
any of these emoji add nothing (12 of the 147 here, e.g. root, sr_Cyrl,
en_IN, and ccp and kab whose names are all unconfirmed drafts): 135 locales
remain, `info.metadata["locales"]`.

Splits train / validation / test by base emoji (`base_emoji`): an emoji and
its skin-tone, gender and hair variants always land in the same split (see
`assign_splits`), so no test picture is a recoloured training picture. A
split without any emoji (e.g. of fraction 0) is left out of the dataset.

Emoji whose picture the font does not draw (an empty bitmap) are dropped;
their number and list are in `builder.info.metadata` ("num_dropped",
"dropped"), with the number of emoji per split, the locales and the counts
of unused draft names.

A byte-level BPE tokenizer is trained on the train split's names (all
locales) during preparation and saved with `save_pretrained` in
`<builder.data_dir>/tokenizer/` (see `tokenizer.train_tokenizer`,
`tokenizer_dir`), for `tokenize(tokenizer="{dataset_dir}/tokenizer",
max_length=...)`.

Typical use:

    builder = get_builder(manual_dir=None, data_dir=None, image_size=64)
    ds = builder.as_dataset(split="train")

In a config (key `data.name = "emoji_image_text"`, see `from_config`), with
the text ops of `mmjax.data.pp.text` (they map the `text` dict to one
string):

    c.modalities = ("image", "text")
    c.pp_train = {"image": "value_range(-1, 1)",
                  "text": 'random_text|tokenize(tokenizer='
                          '"{dataset_dir}/tokenizer", max_length=16)'}
    # Evaluation: one fixed random language per example (all languages),
    # or one language, e.g. 'select_text("fr")|tokenize(...)'.
    c.pp_eval = c.pp_train

Each setting (image size, split fractions and seed, vocabulary size) and each
manual directory's content is prepared into its own TFDS config directory,
named e.g. `s64_seed0_v8000_1a2b3c4d`, under the builder's version (see
`EmojiImageText.RELEASE_NOTES`).
"""

import collections
import dataclasses
import hashlib
import json
import os
from pathlib import Path
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from mmjax.data.builders import emoji_sources
from mmjax.data.builders.base import check_fractions
from mmjax.data.builders.base import LocalFilesBuilder
from mmjax.data.builders.base import PathLike
from mmjax.data.builders.base import prepare_once
from mmjax.data.builders.base import resolve_data_dir
from mmjax.data.builders.base import resolve_manual_dir
from mmjax.data.builders.emoji_sources import Emoji
from mmjax.data.builders.registry import DATASETS
from mmjax.data.builders.tokenizer import SPECIAL_TOKENS
from mmjax.data.builders.tokenizer import train_tokenizer
from mmjax.data.errors import DataError

TOKENIZER_DIR = "tokenizer"
SPLITS = ("train", "validation", "test")

_CITATION = """\
@misc{unicode_emoji,
  author = {{Unicode Consortium}},
  title = {Unicode Technical Standard #51: Unicode Emoji, emoji-test.txt},
  year = {2022}, url = {https://unicode.org/reports/tr51/},
}
@misc{cldr41,
  author = {{Unicode Consortium}},
  title = {Unicode Common Locale Data Repository (CLDR) 41},
  year = {2022}, url = {https://cldr.unicode.org/},
}
@misc{noto_emoji,
  author = {{Google}}, title = {Noto Color Emoji 2.042},
  year = {2023}, url = {https://github.com/googlefonts/noto-emoji},
}
"""


def assign_splits(items: Sequence[Emoji],
                  fractions: Sequence[float] = (0.7, 0.1, 0.2),
                  seed: int = 0) -> Dict[str, str]:
  """`{emoji: split}`, by base emoji, stratified by subgroup.

  The emoji are grouped by `emoji_sources.base_emoji`; a base belongs to
  the subgroup of its first emoji in file order. Within each subgroup (in
  file order) the bases are shuffled by `np.random.default_rng(seed)` and
  laid end to end, each as long as its number of emoji; a base goes to the
  split whose interval of [0, 1) (cumulative `fractions`) holds its
  midpoint. So the split fractions hold per subgroup in emoji (up to the
  base's size), all variants of a base share a split, and a subgroup with
  one base is all train. Deterministic given (items, fractions, seed).

  Args:
    items: the emoji (e.g. from `emoji_sources.parse_emoji_test`).
    fractions: (train, validation, test), non-negative, summing to 1.
    seed: the shuffling seed.

  Returns:
    `{emoji: "train" | "validation" | "test"}` for every item.

  Raises:
    ValueError: for fractions that are not 3 non-negative numbers summing
      to 1.
  """
  check_fractions(fractions)
  bases: Dict[str, List[str]] = collections.defaultdict(list)
  subgroup_bases: Dict[str, List[str]] = collections.defaultdict(list)
  for item in items:
    base = emoji_sources.base_emoji(item.emoji)
    if base not in bases:
      subgroup_bases[item.subgroup].append(base)
    bases[base].append(item.emoji)
  bounds = np.cumsum(fractions)
  rng = np.random.default_rng(seed)
  result = {}
  for subgroup in subgroup_bases:  # Insertion (file) order.
    order = [subgroup_bases[subgroup][i]
             for i in rng.permutation(len(subgroup_bases[subgroup]))]
    total = sum(len(bases[b]) for b in order)
    start = 0
    for base in order:
      size = len(bases[base])
      midpoint = (start + size / 2) / total
      split = SPLITS[min(int(np.searchsorted(bounds, midpoint, "right")), 2)]
      for emoji in bases[base]:
        result[emoji] = split
      start += size
  return result


@dataclasses.dataclass(eq=False)
class EmojiConfig(tfds.core.BuilderConfig):
  """The settings of a preparation, and the manual directory's fingerprint.

  Build with `EmojiConfig.make`, which validates the settings and sets
  `name` = `s{image_size}_seed{split_seed}_v{vocab_size}_{hash}` (hash: 8
  hex characters of sha256 over every setting and the fingerprint), so
  different settings or manual-directory contents never share a prepared
  directory.

  Attributes:
    image_size: S of the images [S, S, 3].
    split_fractions: (train, validation, test) of the emoji, per subgroup
      (see `assign_splits`).
    split_seed: the seed of `assign_splits`.
    vocab_size: the tokenizer's vocabulary size (see
      `tokenizer.train_tokenizer`).
    manual_fingerprint: `fingerprint(manual_dir)`; "" skips the check.
  """
  image_size: int = 64
  split_fractions: Tuple[float, float, float] = (0.7, 0.1, 0.2)
  split_seed: int = 0
  vocab_size: int = 8000
  manual_fingerprint: str = ""

  @classmethod
  def make(cls, image_size: int = 64,
           split_fractions: Sequence[float] = (0.7, 0.1, 0.2),
           split_seed: int = 0, vocab_size: int = 8000,
           manual_fingerprint: str = "") -> "EmojiConfig":
    """The named config for these settings.

    Raises:
      ValueError: for image_size < 1, bad fractions (see
        `check_fractions`), or vocab_size < 259.
    """
    if isinstance(image_size, bool) or int(image_size) != image_size or \
        image_size < 1:
      raise ValueError(f"image_size must be an int >= 1, got {image_size!r}")
    check_fractions(split_fractions)
    minimum = 256 + len(SPECIAL_TOKENS)
    if int(vocab_size) != vocab_size or vocab_size < minimum:
      raise ValueError(f"vocab_size must be an int >= {minimum}, got "
                       f"{vocab_size!r}")
    settings = {"image_size": int(image_size),
                "split_fractions": [float(f) for f in split_fractions],
                "split_seed": int(split_seed), "vocab_size": int(vocab_size)}
    payload = json.dumps({"settings": settings, "manual": manual_fingerprint},
                         sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:8]
    return cls(
        name=(f"s{settings['image_size']}_seed{settings['split_seed']}_"
              f"v{settings['vocab_size']}_{digest}"),
        description=f"{settings}, manual dir fingerprint "
                    f"{manual_fingerprint}",
        image_size=settings["image_size"],
        split_fractions=tuple(settings["split_fractions"]),
        split_seed=settings["split_seed"], vocab_size=settings["vocab_size"],
        manual_fingerprint=manual_fingerprint)


class EmojiImageText(LocalFilesBuilder):
  """Emoji pictures with their CLDR names (see the module docstring).

  Without a config, `EmojiConfig()` (64 x 64, 0.7/0.1/0.2, seed 0, 8000
  tokens) is used and the manual directory is not checked against a
  fingerprint.
  """

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "1.1.0": "The texts are stored once, as the dict feature `text` = "
               "{names [n], locales [n], name_en []}; the flat `text` [n], "
               "`locale` [n], `name_en` and the `names` dict are removed.",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Nothing is downloaded; the raw files are read from the manual "
      "directory (MMJAX_MANUAL_DIR or ../shared/data by default).\n"
      + emoji_sources.LAYOUT)

  @property
  def _config(self) -> EmojiConfig:
    return self.builder_config or EmojiConfig()

  def _info(self) -> tfds.core.DatasetInfo:
    size = self._config.image_size
    # A 1-D string tensor, decoded as tf.string [n] like a
    # Sequence(Text()), but encoded at once: Sequence encodes each string
    # separately, too slow here (benchmarks/RESULTS.md, "Notes moved out of
    # code").
    texts = tfds.features.Tensor(shape=(None,), dtype=np.str_)
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "Noto Color Emoji pictures of Unicode's fully-qualified emoji "
            "with their CLDR short names in many languages, labelled with "
            "their emoji-test.txt subgroup and group; split by base emoji "
            "(skin-tone and gender variants together). Emoji the font draws "
            "as an empty bitmap are dropped: see metadata['num_dropped'] "
            "and metadata['dropped']."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3),
                                         dtype=np.uint8,
                                         encoding_format="png"),
            # The modality "text", one dict (see the module docstring).
            "text": tfds.features.FeaturesDict({
                "names": texts, "locales": texts,
                "name_en": tfds.features.Text()}),
            "label": tfds.features.ClassLabel(),
            "group": tfds.features.ClassLabel(),
            "emoji": tfds.features.Text(),
            "base_emoji": tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage="https://unicode.org/emoji/charts/emoji-list.html",
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
    )

  def _check_fingerprint(self, manual_dir: Path) -> None:
    expected = self._config.manual_fingerprint
    actual = emoji_sources.fingerprint(manual_dir)
    if expected and expected != actual:
      raise DataError(
          f"{manual_dir}: emoji fingerprint {actual} differs from the "
          f"config's {expected}; build the config from this directory with "
          "EmojiConfig.make(..., manual_fingerprint=emoji_sources."
          "fingerprint(manual_dir)).")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = Path(dl_manager.manual_dir)
    self._check_fingerprint(manual_dir)
    config = self._config
    start = time.perf_counter()
    items = emoji_sources.parse_emoji_test(
        manual_dir / emoji_sources.EMOJI_TEST)
    annotations, unused = emoji_sources.load_annotations(
        manual_dir / emoji_sources.ANNOTATIONS)
    split_of = assign_splits(items, config.split_fractions, config.split_seed)
    renderer = emoji_sources.Renderer(manual_dir / emoji_sources.FONT,
                                      config.image_size)
    images, dropped = {}, []
    for item in items:
      image = renderer(item.emoji)
      if image is None:
        dropped.append(item)
      else:
        images[item.emoji] = image
    kept = [(i, item) for i, item in enumerate(items) if item.emoji in images]
    names = {item.emoji: emoji_sources.names_by_locale(item, annotations)
             for _, item in kept}
    subgroups = list(dict.fromkeys(item.subgroup for item in items))
    groups = list(dict.fromkeys(item.group for item in items))
    self.info.features["label"].names = subgroups
    self.info.features["group"].names = groups
    logging.info("Parsed and rendered %d emoji in %.1f s.", len(items),
                 time.perf_counter() - start)

    start = time.perf_counter()
    train_texts = {text for _, item in kept if split_of[item.emoji] == "train"
                   for text in names[item.emoji].values()}
    tokenizer = train_tokenizer(sorted(train_texts), config.vocab_size)
    tokenizer.save_pretrained(os.fspath(Path(self.data_dir) / TOKENIZER_DIR))
    logging.info("Trained the tokenizer (%d tokens) in %.1f s.",
                 len(tokenizer), time.perf_counter() - start)

    used_locales = sorted({l for n in names.values() for l in n})
    self.info.metadata.update({
        "num_emoji": len(items),
        "num_dropped": len(dropped),
        "dropped": [f"{d.emoji} {d.name_en}" for d in dropped],
        "num_examples": {s: sum(split_of[item.emoji] == s for _, item in kept)
                         for s in SPLITS},
        "locales": used_locales,
        "num_names": sum(len(n) for n in names.values()),
        "num_only_en": sum(len(n) == 1 for n in names.values()),
        "draft_names_left_out": {l: n for l, n in unused.items() if n},
        "tokenizer_dir": TOKENIZER_DIR,
        "tokenizer_vocab_size": len(tokenizer),
        "num_tokenizer_texts": len(train_texts),
    })
    if dropped:
      logging.warning("%s: dropped %d emoji the font draws as empty bitmaps: "
                      "%s", manual_dir / emoji_sources.FONT, len(dropped),
                      ", ".join(self.info.metadata["dropped"][:20]))
    # TFDS cannot write an empty split (e.g. a fraction of 0): leave it out.
    return {
        split: self._generate_examples(
            [(i, item) for i, item in kept if split_of[item.emoji] == split],
            images, names)
        for split in SPLITS if self.info.metadata["num_examples"][split]
    }

  def _generate_examples(self, kept: List[Tuple[int, Emoji]],
                         images: Dict[str, np.ndarray],
                         names: Dict[str, Dict[str, str]]
                         ) -> Iterator[Tuple[int, dict]]:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    for index, item in kept:
      locales = list(names[item.emoji])
      texts = [names[item.emoji][l] for l in locales]
      yield index, {
          # Encoded by Pillow: TFDS' own PNG encoder runs a TF graph per
          # image, which is slower (benchmarks/RESULTS.md, "Notes moved out
          # of code").
          "image": Image.fromarray(images[item.emoji]),
          "text": {"names": texts, "locales": locales,
                   "name_en": item.name_en},
          "label": item.subgroup,
          "group": item.group,
          "emoji": item.emoji,
          "base_emoji": emoji_sources.base_emoji(item.emoji),
      }


def get_builder(manual_dir: Optional[PathLike] = None,
                data_dir: Optional[PathLike] = None, image_size: int = 64,
                split_fractions: Sequence[float] = (0.7, 0.1, 0.2),
                split_seed: int = 0, vocab_size: int = 8000
                ) -> EmojiImageText:
  """Returns the emoji_image_text builder, prepared if it was not yet.

  Preparation reads the manual directory (never writes there) and writes
  TFRecords and the tokenizer under
  `data_dir/emoji_image_text/<config name>/<version>/` (see `EmojiConfig`,
  `EmojiImageText.VERSION`); a prepared config of this version is reused,
  not rebuilt.

  Args:
    manual_dir: the raw files (see `emoji_sources.LAYOUT`); empty or None ->
      `resolve_manual_dir` (MMJAX_MANUAL_DIR, else ../shared/data).
    data_dir: TFDS data directory; empty or None -> `resolve_data_dir`.
    image_size: S of the images [S, S, 3].
    split_fractions: (train, validation, test), see `assign_splits`.
    split_seed: the split's shuffling seed.
    vocab_size: the tokenizer's vocabulary size.

  Returns:
    A prepared builder; read it with `builder.as_dataset(split=...)`, its
    tokenizer with `tokenizer_dir(builder)`.

  Raises:
    DataError: listing the missing files of the manual directory, or for
      malformed input files (naming them).
    ValueError: for bad settings (see `EmojiConfig.make`).
  """
  manual_dir = resolve_manual_dir(manual_dir)
  data_dir = resolve_data_dir(data_dir)
  config = EmojiConfig.make(image_size, split_fractions, split_seed,
                            vocab_size, emoji_sources.fingerprint(manual_dir))
  builder = EmojiImageText(data_dir=os.fspath(data_dir), config=config)
  return prepare_once(builder, manual_dir)


def tokenizer_dir(builder: tfds.core.DatasetBuilder) -> Path:
  """`<builder.data_dir>/tokenizer`, the prepared tokenizer's directory.

  Load it with `transformers.AutoTokenizer.from_pretrained(dir,
  local_files_only=True)` or the `tokenize` pp op.

  Raises:
    DataError: if the builder is not prepared, or naming the directory if
      it lacks the tokenizer (delete the config directory to prepare again).
  """
  if not builder.is_prepared():
    raise DataError(f"{builder.data_dir}: emoji_image_text is not prepared, "
                    f"so it has no tokenizer yet; prepare it with "
                    f"mmjax.data.builders.emoji.get_builder(...).")
  directory = Path(builder.data_dir) / TOKENIZER_DIR
  if not (directory / "tokenizer.json").is_file():
    raise DataError(f"{directory}: missing tokenizer.json; the prepared "
                    f"dataset has no tokenizer. Delete {builder.data_dir} "
                    f"and prepare it again with get_builder(...).")
  return directory


@DATASETS.register("emoji_image_text")
def from_config(data_config: ml_collections.ConfigDict) -> EmojiImageText:
  """`get_builder` for `config.data`: emoji pictures and their CLDR names
  (image + text).

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
  return get_builder(
      data_config.get("manual_dir"), data_config.get("data_dir"),
      image_size=data_config.get("image_size", 64),
      split_fractions=tuple(data_config.get("split_fractions",
                                            (0.7, 0.1, 0.2))),
      split_seed=data_config.get("split_seed", 0),
      vocab_size=data_config.get("vocab_size", 8000))
