"""Incomplete rows of a manifest: an empty cell (CSV) or a missing or null
key (JSON lines) is a missing modality. The stored `present` flags and
placeholders, the counts in the dataset's metadata, the errors for a row
without any modality and a modality no train row has, and the `present`
batches of the input pipeline (tiny files written here)."""

import numpy as np
import PIL.Image
import pytest
import soundfile as sf

from mmjax.data import pipeline
from mmjax.data.builders.manifest import builder as manifest
from mmjax.data.builders.manifest import media
from mmjax.data.builders.manifest import table
from mmjax.data.errors import DataError
from mmjax.evaluation import results as eval_results
from tests.data.builders.manifest.helpers import assert_names
from tests.data.builders.manifest.helpers import read_all
from tests.data.builders.manifest.helpers import write_csv
from tests.data.builders.manifest.helpers import write_jsonl
from tests.data.builders.manifest.helpers import RATE

# (image, audio, text, label, split); "" is a missing modality.
ROWS = [
    ("0.png", "0.wav", "a cat", "cat", "train"),
    ("", "1.wav", "a dog", "dog", "train"),
    ("2.png", "", "a cat", "cat", "train"),
    ("3.png", "3.wav", "", "dog", "train"),
    ("", "", "only text", "cat", "validation"),
    ("5.png", "5.wav", "", "dog", "test"),
]
MODALITIES = ("image", "audio", "text")


def _files(root, count=6):
  rng = np.random.default_rng(0)
  for i in range(count):
    PIL.Image.fromarray(rng.integers(0, 256, (4, 6, 3), np.uint8)).save(
        root / f"{i}.png")
    sf.write(root / f"{i}.wav", rng.integers(-800, 800, 200, np.int16), RATE,
             subtype="PCM_16")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp("incomplete")
  _files(root)
  path = write_csv(root / "data.csv", [*MODALITIES, "label", "split"], ROWS)
  return manifest.get_builder(path, root / "tfds", sample_rate=RATE)


def test_presence_flags_and_placeholders(prepared):
  examples = read_all(prepared)
  assert sorted(examples) == list(range(1, len(ROWS) + 1))
  for number, row in enumerate(ROWS, 1):
    _, ex = examples[number]
    for m, cell in zip(MODALITIES, row):
      assert bool(ex["present"][m]) == bool(cell), (number, m)
    if not row[0]:
      np.testing.assert_array_equal(ex["image"], np.zeros((4, 6, 3)))
      assert ex["image"].dtype == np.uint8
    if not row[1]:
      assert ex["audio"].dtype == np.int16 and not ex["audio"].any()
    if not row[2]:
      assert ex["text"] == b""
  assert prepared.builder_config.incomplete == MODALITIES
  assert "incomplete" in prepared.builder_config.description


def test_modality_counts_per_split(prepared):
  expected = {"train": {"image": 3, "audio": 3, "text": 3},
              "validation": {"image": 0, "audio": 0, "text": 1},
              "test": {"image": 1, "audio": 1, "text": 0}}
  assert eval_results.modality_examples(prepared) == expected
  line = eval_results.modality_examples_line(prepared)
  assert line.startswith("Examples with each modality: train 4 (image 3, "
                         "audio 3, text 3); validation 1 (image 0, audio 0, "
                         "text 1); test 1 (image 1, audio 1, text 0)"), line


def test_pipeline_batches_carry_present(prepared):
  ds, _ = pipeline.eval_batches(
      prepared, "train", modalities=("image", "audio"),
      pp={"audio": "to_float|pad_or_crop(100)"}, global_batch_size=4)
  batch = next(ds.as_numpy_iterator())
  assert set(batch["present"]) == set(MODALITIES)  # all the dataset's
  # TFDS stores a split's rows in its own order: compare the (image,
  # audio, text) flags as multisets.
  got = sorted(tuple(int(batch["present"][m][i]) for m in MODALITIES)
               for i in range(4))
  want = sorted(tuple(int(bool(c)) for c in r[:3]) for r in ROWS[:4])
  assert got == want


def test_training_leaves_out_examples_without_the_runs_modalities(prepared):
  # 3 of the 4 train rows have an image; 6 draws cover them twice.
  batch = next(pipeline.train_batches(
      prepared, "train", modalities=("image",), pp={}, global_batch_size=6,
      seed=0))
  np.testing.assert_array_equal(batch["present"]["image"], np.ones(6))
  with_text = next(pipeline.train_batches(
      prepared, "train", modalities=("image", "text"), pp={},
      global_batch_size=8, seed=0))
  assert with_text["present"]["image"].min() == 0  # kept: it has a text


def test_a_complete_manifest_is_stored_as_before(tmp_path):
  _files(tmp_path, 3)
  path = write_csv(tmp_path / "data.csv", ["image", "label"],
                   [("0.png", "cat"), ("1.png", "dog"), ("2.png", "cat")])
  builder = manifest.get_builder(path, tmp_path / "tfds",
                                 split_fractions=(1.0, 0.0, 0.0))
  assert "present" not in builder.info.features
  assert builder.builder_config.incomplete == ()
  assert "incomplete" not in builder.builder_config.description
  batch = next(pipeline.train_batches(
      builder, "train", modalities=("image",), pp={}, global_batch_size=2,
      seed=0))
  assert set(batch) == {"image", "label"}
  assert eval_results.modality_examples(builder) == {
      "train": {"image": 3}}


def test_jsonl_missing_and_null_keys(tmp_path):
  _files(tmp_path, 3)
  path = write_jsonl(tmp_path / "data.jsonl", [
      {"image": "0.png", "text": "x", "label": "cat"},
      {"image": None, "text": "y", "label": "dog"},
      {"image": "2.png", "label": "cat"}])
  parsed = table.read_manifest(path)
  assert parsed.incomplete == ("image", "text")
  assert [media.row_modalities(parsed, r, ("image", "text"))
          for r in parsed.rows] == [("image", "text"), ("text",), ("image",)]


def test_soundtrack_goes_with_its_video(tmp_path):
  path = write_csv(tmp_path / "data.csv", ["video", "text", "label"],
                   [("a.mp4", "x", "cat"), ("", "y", "dog")])
  parsed = table.read_manifest(path)  # no file is opened
  both = ("audio", "video", "text")
  assert media.row_modalities(parsed, parsed.rows[0], both) == both
  assert media.row_modalities(parsed, parsed.rows[1], both) == ("text",)


def test_a_row_without_any_modality_is_an_error(tmp_path):
  path = write_csv(tmp_path / "data.csv", ["image", "text", "label"], [
      ("0.png", "x", "cat"), ("", " ", "dog"), ("1.png", "", "cat"),
      ("", "", "cat")])
  with pytest.raises(DataError) as e:
    table.read_manifest(path)
  assert_names(e.value, path, "no modality (image, text)",
               "line(s) 3 (row 2), 5 (row 4);")


def test_a_modality_no_train_row_has_is_an_error(tmp_path):
  _files(tmp_path, 3)
  path = write_csv(tmp_path / "data.csv", ["image", "text", "label", "split"],
                   [("0.png", "", "cat", "train"), ("1.png", "", "dog",
                                                    "train"),
                    ("2.png", "x", "cat", "validation")])
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  assert_names(e.value, path, "column text is empty in every train row",
               "line(s) 2 (row 1), 3 (row 2)")
