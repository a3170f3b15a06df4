"""Tests of the multimodal_manifest builder (mmjax/data/builders/manifest/)
on tiny CSV and JSON-lines manifests written here: PNG / BMP images made
with Pillow from known arrays, WAV / FLAC recordings written with soundfile
(one at 16 kHz, one stereo) and inline texts; the stored features are
checked against those sources. Also the manifest's splits, fingerprint,
errors (each naming the line, row and file) and configs/manifest.py."""

import os
from pathlib import Path
import re

import librosa
import ml_collections
import numpy as np
import PIL.Image
import pytest
import soundfile as sf
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import manifest as manifest_config
from mmjax.data.builders import registry as datasets
from mmjax.data.builders.manifest import builder as manifest
from mmjax.data.builders.manifest import splits as manifest_splits
from mmjax.data.builders.manifest import table
from mmjax.data.pp import builder as pp_builder
from mmjax.data.errors import DataError
from mmjax.evaluation import results as eval_results
from tests.data.builders.manifest.helpers import assert_names
from tests.data.builders.manifest.helpers import label_manifest
from tests.data.builders.manifest.helpers import read_all
from tests.data.builders.manifest.helpers import write_csv
from tests.data.builders.manifest.helpers import write_jsonl
from tests.data.builders.manifest.helpers import LABELS
from tests.data.builders.manifest.helpers import RATE


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
  """A folder of known files: images (arrays), recordings (arrays)."""
  root = tmp_path_factory.mktemp("manifest_sources")
  rng = np.random.default_rng(7)
  images, recordings = {}, {}
  for i in range(6):
    pixels = rng.integers(0, 256, (5, 7, 3), np.uint8)  # H 5, W 7.
    name = f"img/{i}.{'bmp' if i == 1 else 'png'}"
    (root / "img").mkdir(exist_ok=True)
    PIL.Image.fromarray(pixels).save(root / name)
    images[name] = pixels
  gray = rng.integers(0, 256, (5, 7), np.uint8)
  PIL.Image.fromarray(gray).save(root / "img/gray.png")
  images["img/gray.png"] = np.repeat(gray[:, :, None], 3, axis=2)
  (root / "snd").mkdir()
  for i in range(6):
    samples = rng.integers(-8000, 8000, 400 + 50 * i, dtype=np.int16)
    name = f"snd/{i}.{'flac' if i == 2 else 'wav'}"
    sf.write(root / name, samples, RATE, subtype="PCM_16")
    recordings[name] = samples
  fast = rng.integers(-8000, 8000, 1600, dtype=np.int16)
  sf.write(root / "snd/16k.wav", fast, 16000, subtype="PCM_16")
  recordings["snd/16k.wav"] = fast
  stereo = rng.integers(-8000, 8000, (300, 2), dtype=np.int16)
  sf.write(root / "snd/stereo.wav", stereo, RATE, subtype="PCM_16")
  recordings["snd/stereo.wav"] = stereo
  return root, images, recordings


# Rows of the CSV test: (image, audio, text, label, split).
CSV_ROWS = [
    ("img/0.png", "snd/0.wav", "two\nlines, and \"quotes\"", "cat", "train"),
    ("img/1.bmp", "snd/16k.wav", "héllo wörld 🐱", "dog", "train"),
    ("img/gray.png", "snd/stereo.wav", "gray", "owl", "train"),
    ("img/2.png", "snd/2.flac", "flac", "cat", "validation"),
    ("img/3.png", "snd/3.wav", "three", "dog", "test"),
    ("img/4.png", "snd/4.wav", "four", "owl", "test"),
]


@pytest.fixture(scope="module")
def csv_builder(sources, tmp_path_factory):
  root, _, _ = sources
  path = write_csv(root / "data.csv",
                   ["image", "audio", "text", "label", "split"], CSV_ROWS)
  return manifest.get_builder(path, tmp_path_factory.mktemp("tfds_csv"),
                              sample_rate=RATE)


def test_csv_features_equal_the_source_files(csv_builder, sources):
  _, images, recordings = sources
  examples = read_all(csv_builder)
  assert sorted(examples) == [1, 2, 3, 4, 5, 6]
  names = csv_builder.info.features["label"].names
  assert names == ["cat", "dog", "owl"]
  for number, (image, audio, text, label, split) in enumerate(CSV_ROWS, 1):
    got_split, ex = examples[number]
    assert got_split == split
    assert names[ex["label"]] == label
    assert ex["text"].decode("utf-8") == text
    assert ex["image"].dtype == np.uint8
    np.testing.assert_array_equal(ex["image"], images[image])
    assert ex["audio"].dtype == np.int16
    source = recordings[audio]
    if audio == "snd/16k.wav":
      expected = librosa.resample(source / 32768.0, orig_sr=16000,
                                  target_sr=RATE, res_type="soxr_hq")
      assert ex["audio"].shape == (800,)
      np.testing.assert_allclose(ex["audio"], expected * 32768.0, atol=1.0)
    elif audio == "snd/stereo.wav":
      np.testing.assert_allclose(ex["audio"], source.mean(axis=1), atol=0.5)
    else:
      np.testing.assert_array_equal(ex["audio"], source)


def test_csv_info(csv_builder):
  assert set(csv_builder.info.splits) == {"train", "validation", "test"}
  assert csv_builder.info.splits["train"].num_examples == 3
  assert csv_builder.info.features["image"].shape == (5, 7, 3)
  assert csv_builder.info.features["audio"].sample_rate == RATE
  assert csv_builder.builder_config.name.startswith(
      "image-audio-text_5x7_sr8000_seed0_")


def test_tokenizer_is_trained_on_train_texts(csv_builder):
  """The saved tokenizer works in the `tokenize` pp op and round-trips a
  training text."""
  from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top
  directory = Path(csv_builder.data_dir) / manifest.TOKENIZER_DIR
  tokenizer = AutoTokenizer.from_pretrained(os.fspath(directory),
                                            local_files_only=True)
  text = CSV_ROWS[1][2]
  assert tokenizer.decode(tokenizer(text)["input_ids"],
                          skip_special_tokens=True) == text
  op = pp_builder.parse(f'tokenize(tokenizer="{directory}", max_length=8)')
  out = op(tf.constant("gray"), tf.constant([0, 0], tf.int64))
  assert out["token_ids"].shape == (8,)
  assert bool(out["token_mask"][0])


def test_jsonl_resize_and_stratified_split(tmp_path):
  """image_size resizes (a flat colour stays that colour); without a split
  column the rows of each label are split 0.5 / 0.25 / 0.25."""
  colours = {}
  rows = []
  for i in range(12):
    colour = (20 * i, 255 - 10 * i, 7 * i)
    PIL.Image.new("RGB", (6 + i, 4 + i), colour).save(tmp_path / f"{i}.png")
    colours[i + 1] = colour
    rows.append({"image": f"{i}.png", "text": f"text {i}",
                 "label": LABELS[i % 3]})
  path = write_jsonl(tmp_path / "data.jsonl", rows)
  builder = manifest.get_builder(path, tmp_path / "tfds", image_size=3,
                                 split_fractions=(0.5, 0.25, 0.25))
  examples = read_all(builder)
  assert "audio" not in builder.info.features
  for number, (split, ex) in examples.items():
    assert ex["image"].shape == (3, 3, 3)
    np.testing.assert_array_equal(ex["image"],
                                  np.broadcast_to(colours[number], (3, 3, 3)))
    assert ex["text"].decode() == f"text {number - 1}"
  counts = {}
  for split, ex in examples.values():
    counts[(split, int(ex["label"]))] = counts.get((split, int(ex["label"])),
                                                   0) + 1
  # 4 rows per label: 2 train, 1 validation, 1 test.
  assert counts == {(s, l): n for l in range(3)
                    for s, n in (("train", 2), ("validation", 1),
                                 ("test", 1))}
  splits = manifest_splits.assign_splits(table.read_manifest(path),
                                         (0.5, 0.25, 0.25), 0)
  assert {n: s for n, (s, _) in examples.items()} == {
      i + 1: s for i, s in enumerate(splits)}


def test_stratified_split_is_seeded(tmp_path):
  parsed = table.read_manifest(label_manifest(tmp_path))
  first = manifest_splits.assign_splits(parsed, (0.8, 0.1, 0.1), seed=0)
  assert first == manifest_splits.assign_splits(parsed, (0.8, 0.1, 0.1), seed=0)
  assert first != manifest_splits.assign_splits(parsed, (0.8, 0.1, 0.1), seed=1)
  for label in LABELS:
    of_label = [s for s, r in zip(first, parsed.rows)
                if r.values["label"] == label]
    assert [of_label.count(s) for s in table.SPLITS] == [8, 1, 1]


def test_every_label_keeps_a_train_row(tmp_path):
  parsed = table.read_manifest(label_manifest(tmp_path, per_label=1))
  assert manifest_splits.assign_splits(parsed, (0.3, 0.4, 0.3)) == ["train"] * 3
  with pytest.raises(DataError, match="label 'cat' is in no train row"):
    manifest_splits.assign_splits(parsed, (0.0, 0.5, 0.5))


def _text_manifest(tmp_path: Path, texts) -> Path:
  rows = [(f"{i}.png", t, LABELS[i % 2]) for i, t in enumerate(texts)]
  for i in range(len(texts)):
    PIL.Image.new("RGB", (4, 4), (i, 0, 0)).save(tmp_path / f"{i}.png")
  return write_csv(tmp_path / "data.csv", ["image", "text", "label"], rows)


def test_fingerprint_reuses_same_content_and_prepares_edits(tmp_path):
  path = _text_manifest(tmp_path, ["a", "b", "c", "d"])
  data_dir = tmp_path / "tfds"
  first = manifest.get_builder(path, data_dir)
  marker = Path(first.data_dir) / "marker"
  marker.write_text("kept")
  again = manifest.get_builder(path, data_dir)
  assert again.builder_config.name == first.builder_config.name
  assert marker.is_file()  # Reused, not prepared again.

  _text_manifest(tmp_path, ["a", "b", "c", "e"])  # Edit one text.
  edited = manifest.get_builder(path, data_dir)
  assert edited.builder_config.name != first.builder_config.name
  assert read_all(edited)[4][1]["text"] == b"e"

  stat = (tmp_path / "0.png").stat()
  os.utime(tmp_path / "0.png", ns=(stat.st_atime_ns,
                                   stat.st_mtime_ns + 10**9))
  touched = manifest.ManifestConfig.make(table.read_manifest(path))
  assert touched.name not in (first.builder_config.name,
                              edited.builder_config.name)
  other_seed = manifest.ManifestConfig.make(table.read_manifest(path),
                                            split_seed=1)
  assert other_seed.name != touched.name


# Errors: each names the manifest, the line (and row) and the file.


def test_missing_file(tmp_path):
  path = _text_manifest(tmp_path, ["a", "b", "c"])
  (tmp_path / "2.png").unlink()
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  assert_names(e.value, path, "line 4 (row 3)", "column image",
               tmp_path / "2.png", "no such file")


def test_unreadable_image_header(tmp_path):
  path = _text_manifest(tmp_path, ["a", "b", "c"])
  (tmp_path / "1.png").write_bytes(b"not a png at all")
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  assert_names(e.value, path, "line 3 (row 2)", tmp_path / "1.png",
               "cannot read")


def test_corrupt_image_data_fails_at_preparation(tmp_path):
  """A PNG cut after its header opens, so it fails when decoded."""
  PIL.Image.fromarray(np.random.default_rng(0).integers(
      0, 256, (32, 32, 3), np.uint8)).save(tmp_path / "cut.png")
  data = (tmp_path / "cut.png").read_bytes()
  (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
  path = write_csv(tmp_path / "data.csv", ["image", "label"],
                   [("cut.png", "cat")])
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds", image_size=8)
  assert_names(e.value, path, "line 2 (row 1)", tmp_path / "cut.png",
               "cannot read")


def test_unreadable_audio(tmp_path):
  sf.write(tmp_path / "good.wav", np.zeros(100, np.int16), RATE)
  (tmp_path / "bad.wav").write_bytes(b"RIFF....garbage" * 10)
  path = write_jsonl(tmp_path / "data.jsonl", [
      {"audio": "good.wav", "label": "cat"},
      {"audio": "bad.wav", "label": "cat"}])
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  assert_names(e.value, path, "line 2 (row 2)", "column audio",
               tmp_path / "bad.wav", "cannot read")


def test_bad_examples_skip_leaves_out_and_lists_bad_rows(tmp_path):
  rng = np.random.default_rng(0)
  rows = []
  for i in range(6):
    PIL.Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(
        tmp_path / f"{i}.png")
    sf.write(tmp_path / f"{i}.wav", np.zeros(100, np.int16), RATE)
    rows.append((f"{i}.png", f"{i}.wav", LABELS[i % 2], "train"))
  rows[5] = rows[5][:3] + ("test",)
  (tmp_path / "1.png").unlink()  # missing
  (tmp_path / "2.wav").write_bytes(b"RIFF....garbage" * 10)  # undecodable
  data = (tmp_path / "3.png").read_bytes()  # cut after the header
  (tmp_path / "3.png").write_bytes(data[:len(data) // 2])
  path = write_csv(tmp_path / "data.csv", ["image", "audio", "label", "split"],
                   rows)
  with pytest.raises(DataError, match="1.png: no such file"):
    manifest.get_builder(path, tmp_path / "tfds")  # "fail" is the default
  with pytest.raises(ValueError, match="bad_examples must be one of"):
    manifest.get_builder(path, tmp_path / "tfds", bad_examples="ignore")
  builder = manifest.get_builder(path, tmp_path / "tfds", bad_examples="skip")
  examples = read_all(builder)
  assert sorted(examples) == [1, 5, 6]  # 1-based rows; rows 2-4 are bad
  assert {split for split, _ in examples.values()} == {"train", "test"}
  skipped = builder.info.metadata["skipped_examples"]
  assert [len(skipped[s]) for s in ("train", "test")] == [3, 0]
  # What the train loop reports (log, run_info.json, results.json).
  assert eval_results.skipped_examples(builder) == {"train": 3, "test": 0}
  for message, file in zip(skipped["train"], ("1.png", "2.wav", "3.png")):
    assert str(tmp_path / file) in message and "data.csv, line" in message
  # The prepared copy is reused, its list read back from disk; the missing
  # file's return re-prepares.
  reused = manifest.get_builder(path, tmp_path / "tfds", bad_examples="skip")
  assert reused.data_dir == builder.data_dir
  assert reused.info.metadata["skipped_examples"] == skipped
  PIL.Image.new("RGB", (8, 8)).save(tmp_path / "1.png")
  again = manifest.get_builder(path, tmp_path / "tfds", bad_examples="skip")
  assert again.data_dir != builder.data_dir
  assert sorted(read_all(again)) == [1, 2, 5, 6]


def test_images_of_different_sizes(tmp_path):
  path = _text_manifest(tmp_path, ["a", "b", "c"])
  PIL.Image.new("RGB", (5, 4)).save(tmp_path / "2.png")
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  assert_names(e.value, path, "line 4 (row 3)", tmp_path / "2.png",
               "5 x 4", "line 2 (row 1)", "4 x 4")


def test_unknown_split_names_the_line_after_a_multiline_field(tmp_path):
  path = write_csv(tmp_path / "data.csv", ["text", "label", "split"], [
      ("one\ntwo", "cat", "train"), ("x", "cat", "trian")])
  with pytest.raises(DataError) as e:
    table.read_manifest(path)
  assert_names(e.value, path, "line 4 (row 2)", "'trian'", "validation")


def test_label_unseen_in_train(tmp_path):
  path = write_csv(tmp_path / "data.csv", ["text", "label", "split"], [
      ("a", "cat", "train"), ("b", "dog", "validation"), ("c", "cat", "test"),
      ("d", "dog", "test")])
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  assert_names(e.value, path, "'dog'", "line(s) 3 (row 2), 5 (row 4)")


def test_unknown_column(tmp_path):
  path = write_csv(tmp_path / "data.csv", ["text", "label", "caption", "x"],
                   [("a", "cat", "a cat", "1")])
  with pytest.raises(DataError) as e:
    table.read_manifest(path)
  assert_names(e.value, path, "'caption', 'x'", "allowed columns",
               "video")


def test_empty_field(tmp_path):
  # An empty modality cell is a missing modality (test_incomplete.py); an
  # empty label is an error, and so is a row left without any modality.
  path = write_jsonl(tmp_path / "data.jsonl", [
      {"text": "a", "label": "cat"}, {"text": "b", "label": "  "}])
  with pytest.raises(DataError) as e:
    table.read_manifest(path)
  assert_names(e.value, path, "line 2 (row 2)", "column label", "empty")
  path = write_jsonl(tmp_path / "data.jsonl", [
      {"text": "a", "label": "cat"}, {"text": "  ", "label": "cat"}])
  with pytest.raises(DataError) as e:
    table.read_manifest(path)
  assert_names(e.value, path, "line(s) 2 (row 2)", "no modality (text)")


def test_missing_manifest(tmp_path):
  path = tmp_path / "nowhere.csv"
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  assert_names(e.value, path, "no such manifest", ".csv", ".jsonl", "label")


def test_registry_needs_a_manifest():
  with pytest.raises(ValueError, match=re.escape("config.data.manifest")):
    datasets.get_builder(ml_collections.ConfigDict(
        {"name": "multimodal_manifest", "manifest": ""}))


def test_config_reads_modalities_and_classes(tmp_path):
  path = write_jsonl(tmp_path / "data.jsonl", [
      {"audio": "a.wav", "text": "a", "label": l} for l in LABELS])
  c = manifest_config.get_config(f"manifest={path},text=gru")
  assert c.modalities == ("audio", "text")
  assert c.model.num_classes == 3
  assert set(c.model.encoders) == {"audio", "text"}
  assert c.model.encoders.text.name == "gru"
  assert c.data.manifest == str(path.resolve())
  assert set(c.pp_train) == set(c.pp_eval) == {"audio", "text"}
  assert "pad_or_crop(8000, mode='random')" in c.pp_train.audio
  default = manifest_config.get_config()
  assert default.modalities == manifest_config.DEFAULT_MODALITIES
  assert default.data.manifest == ""
