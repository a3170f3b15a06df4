"""Tests of the emoji_image_text TFDS builder, its tokenizer and text pp ops,
on the real data in ../shared/data/emoji (prepared once, at 32 x 32 with a
2000-token vocabulary to keep the module fast), and on tiny manual
directories that link to the real font and a few real annotation files."""

import collections
import os
from pathlib import Path
import re
import time

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mmjax.data import pipeline
from mmjax.data.builders import emoji
from mmjax.data.builders import emoji_sources
from mmjax.data.builders import registry as datasets
from mmjax.data.builders import tokenizer
from mmjax.data.pp import builder as pp_builder
from mmjax.data.pp import text as text_ops
from mmjax.data.errors import DataError
from tests.conftest import EMOJI_TINY

transformers = pytest.importorskip("transformers")

IMAGE_SIZE = EMOJI_TINY["image_size"]
VOCAB_SIZE = EMOJI_TINY["vocab_size"]
SEED = tf.constant([3, 4], tf.int64)
TOKENIZE = 'tokenize(tokenizer="{dataset_dir}/tokenizer", max_length=%d)'


@pytest.fixture(scope="module")
def data_dir(prepared_emoji_dir):
  """Shared with tests/test_configs.py (prepared once per pytest worker)."""
  return prepared_emoji_dir


@pytest.fixture(scope="module")
def builder(real_manual_dir, data_dir):
  return emoji.get_builder(real_manual_dir, data_dir, image_size=IMAGE_SIZE,
                           vocab_size=VOCAB_SIZE)


@pytest.fixture(scope="module")
def examples(builder):
  """`{split: [numpy example]}` of the whole dataset."""
  return {split: list(tfds.as_numpy(builder.as_dataset(split=split)))
          for split in emoji.SPLITS}


@pytest.fixture(scope="module")
def by_emoji(examples):
  """`{emoji: (split, example)}`."""
  return {ex["emoji"].decode(): (split, ex)
          for split, exs in examples.items() for ex in exs}


def _direct_emoji_test(path):
  """[(emoji, group, subgroup)] of the fully-qualified lines outside
  Component, parsed here independently of `emoji_sources.parse_emoji_test`."""
  rows, group, subgroup = [], None, None
  for line in Path(path).read_text(encoding="utf-8").splitlines():
    if line.startswith("# group:"):
      group = line.split(":", 1)[1].strip()
    elif line.startswith("# subgroup:"):
      subgroup = line.split(":", 1)[1].strip()
    elif "; fully-qualified" in line and group != "Component":
      cps = line.split(";")[0].split()
      rows.append(("".join(chr(int(c, 16)) for c in cps), group, subgroup))
  return rows


def _tts(real_manual_dir, locale, emoji_str):
  """The tts name of `emoji_str` in `<locale>.xml`, read with a regex."""
  text = (real_manual_dir / emoji_sources.ANNOTATIONS /
          f"{locale}.xml").read_text(encoding="utf-8")
  match = re.search(r'<annotation cp="%s" type="tts"[^>]*>([^<]*)<' %
                    re.escape(emoji_str.replace("\ufe0f", "")), text)
  return match.group(1)


def _texts(ex):
  """`{locale: name}` of a numpy example."""
  return dict(zip((l.decode() for l in ex["text"]["locales"]),
                  (t.decode() for t in ex["text"]["names"])))


def _text_tensors(ex):
  """The example's `text` dict as tensors, the input of the text ops."""
  return {k: tf.constant(v) for k, v in ex["text"].items()}


# Sizes, splits and labels.


def test_split_counts_add_up(builder, examples, real_manual_dir):
  direct = _direct_emoji_test(real_manual_dir / emoji_sources.EMOJI_TEST)
  assert len(direct) == 3512  # ../shared/data/README.md
  meta = builder.info.metadata
  assert meta["num_emoji"] == len(direct)
  assert meta["num_dropped"] == len(meta["dropped"])
  sizes = {s: builder.info.splits[s].num_examples for s in emoji.SPLITS}
  assert sizes == {s: len(examples[s]) for s in emoji.SPLITS}
  assert sizes == meta["num_examples"]
  assert sum(sizes.values()) == len(direct) - meta["num_dropped"]
  assert all(sizes.values())
  assert 0.6 < sizes["train"] / sum(sizes.values()) < 0.8
  kept = {ex["emoji"].decode() for exs in examples.values() for ex in exs}
  assert len(kept) == sum(sizes.values())
  assert kept <= {e for e, _, _ in direct}


def test_no_base_emoji_in_two_splits(examples):
  splits_of = collections.defaultdict(set)
  for split, exs in examples.items():
    for ex in exs:
      base = ex["base_emoji"].decode()
      assert base == emoji_sources.base_emoji(ex["emoji"].decode())
      splits_of[base].add(split)
  assert all(len(s) == 1 for s in splits_of.values())
  assert len(splits_of) > 1500  # Bases are mostly not the emoji themselves.


@pytest.mark.parametrize("variants, base", [
    (("👩🏽‍💻", "🧑‍💻", "👨‍💻", "👩‍💻", "🧑🏿‍💻"), "🧑‍💻"),
    (("🏃‍♀️", "🏃🏿", "🏃", "🏃‍♂️", "🏃🏻‍♀️"), "🏃"),
    (("👍", "👍🏽"), "👍"),
    (("👨‍🦰", "👩🏾‍🦰", "🧑‍🦰"), "🧑‍🦰"),
    (("👩‍❤️‍👨", "👨‍❤️‍👨", "🧑🏻‍❤️‍🧑🏼", "💑", "💑🏿"), "🧑‍❤‍🧑"),
    (("👨", "👩🏻", "🧑"), "🧑"),
    (("😀",), "😀"),
])
def test_variants_share_base_and_split(by_emoji, variants, base):
  assert {emoji_sources.base_emoji(v) for v in variants} == {base}
  assert len({by_emoji[v][0] for v in variants}) == 1
  assert {by_emoji[v][1]["base_emoji"].decode() for v in variants} == {base}


def test_distinct_bases_stay_distinct():
  assert len({emoji_sources.base_emoji(e) for e in
              ("🧑‍💻", "🏃", "🧑", "😀", "🧑‍🎓", "👪", "🧒")}) == 7


def test_labels_match_the_headers(builder, by_emoji, real_manual_dir):
  direct = _direct_emoji_test(real_manual_dir / emoji_sources.EMOJI_TEST)
  subgroups = list(dict.fromkeys(s for _, _, s in direct))
  groups = list(dict.fromkeys(g for _, g, _ in direct))
  assert builder.info.features["label"].names == subgroups
  assert builder.info.features["group"].names == groups
  assert (len(subgroups), len(groups)) == (99, 9)
  expected = {e: (g, s) for e, g, s in direct}
  for e, group, subgroup in [("😀", "Smileys & Emotion", "face-smiling"),
                             ("🏃🏿", "People & Body", "person-activity"),
                             ("🇫🇷", "Flags", "country-flag"),
                             ("🍕", "Food & Drink", "food-prepared")]:
    assert expected[e] == (group, subgroup)
    ex = by_emoji[e][1]
    assert builder.info.features["label"].int2str(ex["label"]) == subgroup
    assert builder.info.features["group"].int2str(ex["group"]) == group


def test_assign_splits_deterministic_and_seeded(real_manual_dir):
  items = emoji_sources.parse_emoji_test(
      real_manual_dir / emoji_sources.EMOJI_TEST)
  a = emoji.assign_splits(items, seed=0)
  assert a == emoji.assign_splits(items, seed=0)
  assert a != emoji.assign_splits(items, seed=1)
  assert emoji.assign_splits(items, (1.0, 0.0, 0.0)) == {
      i.emoji: "train" for i in items}
  with pytest.raises(ValueError, match="summing to 1"):
    emoji.assign_splits(items, (0.5, 0.1, 0.1))


# Names.


def test_features_store_the_texts_once(builder, by_emoji):
  features = builder.info.features
  assert set(features) == {"image", "text", "label", "group", "emoji",
                           "base_emoji"}
  assert set(features["text"]) == {"names", "locales", "name_en"}
  assert str(builder.info.version) == "1.1.0"
  assert Path(builder.data_dir).name == "1.1.0"
  text = by_emoji["😀"][1]["text"]
  assert set(text) == {"names", "locales", "name_en"}
  assert text["names"].shape == text["locales"].shape
  assert text["names"].ndim == 1 and np.ndim(text["name_en"]) == 0
  # Read as tf.string tensors of those shapes.
  spec = builder.as_dataset(split="validation").element_spec["text"]
  assert {k: (v.dtype, v.shape.as_list()) for k, v in spec.items()} == {
      "names": (tf.string, [None]), "locales": (tf.string, [None]),
      "name_en": (tf.string, [])}


def test_names_match_cldr(by_emoji, real_manual_dir):
  ex = by_emoji["😀"][1]
  texts = _texts(ex)
  assert texts["fr"] == _tts(real_manual_dir, "fr", "😀") == "visage rieur"
  assert texts["ja"] == _tts(real_manual_dir, "ja", "😀") == "にっこり笑う"
  assert texts["en"] == ex["text"]["name_en"].decode() == "grinning face"
  locales = [l.decode() for l in ex["text"]["locales"]]
  assert locales[0] == "en" and locales[1:] == sorted(locales[1:])
  assert len(set(locales)) == len(locales) == len(ex["text"]["names"]) > 90
  # Child locales keep only their own names: en_GB has none for 😀.
  assert "en_GB" not in texts and texts["es_419"] == "cara feliz"


def test_skin_tone_variant_uses_base_names(by_emoji, real_manual_dir):
  texts = _texts(by_emoji["👍🏽"][1])
  assert texts["fr"] == _tts(real_manual_dir, "fr", "👍")
  assert texts["en"] == "thumbs up: medium skin tone"
  assert set(texts) == set(_texts(by_emoji["👍"][1]))


# Images.


def test_images_are_rendered_emoji(by_emoji, examples):
  smile, flag = by_emoji["😀"][1]["image"], by_emoji["🇫🇷"][1]["image"]
  for image in (smile, flag):
    assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert image.dtype == np.uint8
    assert (image < 200).any() and image.std() > 20  # Not blank.
    np.testing.assert_array_equal(image[0, 0], [255, 255, 255])  # White.
  assert np.abs(smile.astype(int) - flag.astype(int)).mean() > 20
  # The smiley is yellow: red and green well above blue in its middle.
  r, g, b = smile[12:20, 12:20].reshape(-1, 3).mean(0)
  assert r > 150 and g > 120 and b < 100
  blank = sum(int((ex["image"] == 255).all()) for exs in examples.values()
              for ex in exs)
  assert blank == 0


def test_renderer_returns_none_for_an_empty_bitmap(real_manual_dir):
  render = emoji_sources.Renderer(real_manual_dir / emoji_sources.FONT, 48)
  assert render("x") is None  # No glyph in Noto Color Emoji.
  assert render("🇯🇵").shape == (48, 48, 3)


# Tokenizer.


@pytest.fixture(scope="module")
def hf_tokenizer(builder):
  return transformers.AutoTokenizer.from_pretrained(
      str(emoji.tokenizer_dir(builder)), local_files_only=True)


def test_tokenizer_is_in_the_prepared_dir(builder, hf_tokenizer):
  directory = emoji.tokenizer_dir(builder)
  assert directory == Path(builder.data_dir) / "tokenizer"
  assert len(hf_tokenizer) == builder.info.metadata[
      "tokenizer_vocab_size"] == VOCAB_SIZE
  assert hf_tokenizer.pad_token_id == 0
  ids = hf_tokenizer("grinning face")["input_ids"]
  assert ids[0] == hf_tokenizer.bos_token_id and ids[-1] == (
      hf_tokenizer.eos_token_id)
  assert hf_tokenizer.unk_token_id is None  # Byte-level: nothing unknown.


def test_tokenizer_round_trips_names(by_emoji, hf_tokenizer):
  texts = _texts(by_emoji["😀"][1])
  for locale in ("ja", "ar", "ru", "hi", "zh_Hant", "en"):
    text = texts[locale]
    ids = hf_tokenizer(text)["input_ids"]
    assert hf_tokenizer.decode(ids, skip_special_tokens=True) == text
  # A text with unseen characters round-trips too (bytes).
  text = "🦩 ẞ ﬁ ꙮ"
  assert hf_tokenizer.decode(hf_tokenizer(text)["input_ids"],
                             skip_special_tokens=True) == text


def test_tokenizer_trained_on_train_texts_only(builder, examples):
  train = {t for ex in examples["train"] for t in ex["text"]["names"]}
  every = {t for exs in examples.values() for ex in exs
           for t in ex["text"]["names"]}
  assert builder.info.metadata["num_tokenizer_texts"] == len(train)
  assert len(every) > len(train)


def test_train_tokenizer_is_deterministic(examples):
  texts = sorted({t.decode() for ex in examples["validation"][:200]
                  for t in ex["text"]["names"]})
  a = tokenizer.train_tokenizer(texts, 600).backend_tokenizer.to_str()
  b = tokenizer.train_tokenizer(texts[::-1] + texts[:50], 600)
  assert a == b.backend_tokenizer.to_str()


def test_tokenize_op_loads_the_tokenizer(builder, by_emoji, hf_tokenizer):
  spec = pipeline.resolve_dataset_dir(TOKENIZE % 12, builder)
  assert spec == (f'tokenize(tokenizer="{builder.data_dir}/tokenizer", '
                  f'max_length=12)')
  text = _texts(by_emoji["😀"][1])["ja"]
  out = pp_builder.parse(spec)(tf.constant(text), SEED)
  want = hf_tokenizer(text, padding="max_length", truncation=True,
                      max_length=12)
  np.testing.assert_array_equal(out["token_ids"], want["input_ids"])
  np.testing.assert_array_equal(out["token_mask"],
                                np.asarray(want["attention_mask"], bool))


# Text ops.


def test_select_text(by_emoji, examples):
  ex = by_emoji["😀"][1]
  names = _text_tensors(ex)
  texts = _texts(ex)
  for locale in ("fr", "ja", "en", "es_MX"):
    op = pp_builder.parse(f"select_text({locale!r})")
    assert op(names, SEED).numpy().decode() == texts[locale]
  # Fallbacks: en_GB -> en_001 -> en, then name_en.
  assert pp_builder.parse("select_text('xx')")(
      names, SEED).numpy() == ex["text"]["name_en"]
  every = [e for exs in examples.values() for e in exs]
  fuji = next(e for e in every if "en_001" in _texts(e)
              and "en_GB" not in _texts(e))
  got = text_ops.select_text("en_GB")(_text_tensors(fuji), SEED)
  assert got.numpy().decode() == _texts(fuji)["en_001"]
  assert _texts(fuji)["en_001"] != _texts(fuji)["en"]
  only_en = next(e for e in every if len(e["text"]["names"]) == 1)
  assert text_ops.select_text("fr")(_text_tensors(only_en),
                                    SEED).numpy() == only_en["text"]["name_en"]
  # One text passes through; the bare [n] texts have no locales.
  assert text_ops.select_text("fr")(tf.constant("a cat"),
                                    SEED).numpy() == b"a cat"
  with pytest.raises(ValueError, match="locales.*'names', 'locales'"):
    text_ops.select_text("fr")(tf.constant(ex["text"]["names"]), SEED)


@pytest.mark.parametrize("op", ["select_text('fr')", "random_text"])
def test_text_ops_name_the_expected_keys(by_emoji, op):
  text = _text_tensors(by_emoji["😀"][1])
  fn = pp_builder.parse(op)
  keys = re.escape("['names', 'locales', 'name_en']")
  # The old layout {text, locale, name_en}, or a missing key.
  old = {"text": text["names"], "locale": text["locales"],
         "name_en": text["name_en"]}
  with pytest.raises(ValueError, match=r"lacks \['names', 'locales'\].*"
                     + keys):
    fn(old, SEED)
  with pytest.raises(ValueError, match=r"lacks \['name_en'\]"):
    fn({"names": text["names"], "locales": text["locales"]}, SEED)
  with pytest.raises(ValueError, match="'locales' must be a tf.string of "
                     "rank 1.*" + keys):
    fn(dict(text, locales=text["locales"][0]), SEED)
  with pytest.raises(ValueError, match=keys):
    fn(tf.zeros([3]), SEED)
  # A class name of the zero-shot evaluation passes through unchanged.
  assert fn(tf.constant("grinning face"), SEED).numpy() == b"grinning face"


def test_random_text_is_seeded(examples):
  batch = examples["validation"][:64]
  op = pp_builder.parse("random_text")

  def picks(seed):
    return [op(_text_tensors(ex), tf.constant([seed, i], tf.int64)).numpy()
            for i, ex in enumerate(batch)]

  first = picks(0)
  assert first == picks(0)
  assert first != picks(1)
  assert all(p in ex["text"]["names"] for p, ex in zip(first, batch))
  locales = {ex["text"]["locales"][list(ex["text"]["names"]).index(p)]
             for p, ex in zip(first, batch)}
  assert len(locales) > 10
  # The bare names [n] work as well, with the same pick.
  assert op(tf.constant(batch[0]["text"]["names"]),
            tf.constant([0, 0], tf.int64)).numpy() == first[0]


def test_pipeline_with_dataset_dir_and_text_ops(builder, examples,
                                                hf_tokenizer):
  pp = {"image": "value_range(0, 1)",
        "text": "random_text|" + TOKENIZE % 64}
  run = lambda: next(pipeline.eval_batches(
      builder, "validation", modalities=("image", "text"), pp=pp,
      global_batch_size=8)[0].as_numpy_iterator())
  batch = run()
  assert batch["image"].shape == (8, IMAGE_SIZE, IMAGE_SIZE, 3)
  assert batch["text"]["token_ids"].shape == (8, 64)
  np.testing.assert_array_equal(batch["text"]["token_ids"],
                                run()["text"]["token_ids"])
  for row, ex in zip(batch["text"]["token_ids"], examples["validation"]):
    text = hf_tokenizer.decode(row, skip_special_tokens=True)
    assert any(t.decode().startswith(text) for t in ex["text"]["names"])
  train = next(pipeline.train_batches(
      builder, "train", modalities=("image", "text"),
      pp={"text": "select_text('fr')|" + TOKENIZE % 24},
      global_batch_size=4, seed=0))
  assert train["text"]["token_ids"].shape == (4, 24)


def test_resolve_dataset_dir(builder):
  assert pipeline.resolve_dataset_dir("to_float", builder) == "to_float"
  spec = "op({'a': 1})|x(path='{dataset_dir}/f', n={1})"
  assert pipeline.resolve_dataset_dir(spec, builder) == (
      f"op({{'a': 1}})|x(path='{builder.data_dir}/f', n={{1}})")

  class Fake:
    data_dir = "/tmp/a|b"
  with pytest.raises(ValueError, match="dataset directory"):
    pipeline.resolve_dataset_dir("x('{dataset_dir}')", Fake())


# Configs, registry, errors.


def test_config_names_differ_per_setting():
  names = {emoji.EmojiConfig.make(**kw, manual_fingerprint="f").name
           for kw in ({}, {"image_size": 32}, {"split_seed": 1},
                      {"vocab_size": 4000},
                      {"split_fractions": (0.8, 0.1, 0.1)})}
  assert len(names) == 5
  assert emoji.EmojiConfig.make(manual_fingerprint="f").name != (
      emoji.EmojiConfig.make(manual_fingerprint="g").name)
  assert emoji.EmojiConfig.make().name.startswith("s64_seed0_v8000_")
  with pytest.raises(ValueError, match="vocab_size"):
    emoji.EmojiConfig.make(vocab_size=10)


def test_registry_reuses_the_prepared_builder(builder, real_manual_dir,
                                              data_dir):
  config = ml_collections.ConfigDict({
      "name": "emoji_image_text", "manual_dir": str(real_manual_dir),
      "data_dir": str(data_dir), "image_size": IMAGE_SIZE,
      "split_fractions": (0.7, 0.1, 0.2), "split_seed": 0,
      "vocab_size": VOCAB_SIZE})
  start = time.perf_counter()
  again = datasets.get_builder(config)
  assert time.perf_counter() - start < 5  # Not prepared again.
  assert again.data_dir == builder.data_dir
  assert builder.builder_config.name in str(builder.data_dir)


def _link_manual_dir(root, real_manual_dir, locales=("fr", "ja")):
  """A manual dir with the real font and a few real annotation files."""
  (root / emoji_sources.ANNOTATIONS).mkdir(parents=True)
  os.symlink(real_manual_dir / emoji_sources.FONT, root / emoji_sources.FONT)
  for locale in locales:
    os.symlink(real_manual_dir / emoji_sources.ANNOTATIONS / f"{locale}.xml",
               root / emoji_sources.ANNOTATIONS / f"{locale}.xml")
  return root


def test_missing_emoji_test_names_the_file(tmp_path, real_manual_dir):
  manual = _link_manual_dir(tmp_path / "manual", real_manual_dir)
  with pytest.raises(DataError, match=r"emoji/emoji-test\.txt"):
    emoji.get_builder(manual, tmp_path / "tfds")
  with pytest.raises(DataError, match=r"emoji-test\.txt: missing file"):
    emoji_sources.parse_emoji_test(manual / emoji_sources.EMOJI_TEST)


def test_malformed_emoji_test_names_the_line(tmp_path):
  path = tmp_path / "emoji-test.txt"
  path.write_text("# group: Smileys & Emotion\n# subgroup: face-smiling\n"
                  "1F600 ; fully-qualified # 😀 E1.0 grinning face\n"
                  "1F603 fully-qualified 😃\n", encoding="utf-8")
  with pytest.raises(DataError, match=r"emoji-test\.txt:4: malformed"):
    emoji_sources.parse_emoji_test(path)


def test_unrenderable_emoji_are_dropped_and_counted(tmp_path, real_manual_dir):
  manual = _link_manual_dir(tmp_path / "manual", real_manual_dir)
  lines = ["# group: Smileys & Emotion", "# subgroup: face-smiling"]
  lines += [f"{ord(e):X} ; fully-qualified # {e} E1.0 face {i}"
            for i, e in enumerate("😀😃😄😁😆😅")]
  lines += ["# subgroup: letters", "0041 ; fully-qualified # A E0.0 letter a",
            "# group: Component", "# subgroup: skin-tone",
            "1F3FB ; component # 🏻 E1.0 light skin tone"]
  (manual / emoji_sources.EMOJI_TEST).write_text("\n".join(lines) + "\n",
                                                 encoding="utf-8")
  b = emoji.get_builder(manual, tmp_path / "tfds", image_size=16,
                        split_fractions=(0.5, 0.0, 0.5), vocab_size=300)
  meta = b.info.metadata
  assert meta["num_emoji"] == 7
  assert (meta["num_dropped"], meta["dropped"]) == (1, ["A letter a"])
  assert sorted(b.info.splits) == ["test", "train"]  # No empty validation.
  sizes = {s: b.info.splits[s].num_examples for s in ("train", "test")}
  assert sum(sizes.values()) == 6 and meta["num_examples"]["validation"] == 0
  assert meta["locales"] == ["en", "fr", "ja"]
  assert b.info.features["label"].names == ["face-smiling", "letters"]
