"""Tests of the multimodal_manifest builder (mmjax/data/manifest.py) on tiny
manifests written here: PNG / BMP images made with Pillow from known arrays,
WAV / FLAC recordings written with soundfile (one at 16 kHz, one stereo),
inline texts, 16 x 16 videos written with PyAV (lossless FFV1 / PNG codecs,
lossy MPEG-4) and frame folders, and videos and audio files with
soundtracks written with PyAV (lossless PCM / FLAC tones, lossy AAC; some
starting before or after the video); the stored features are checked
against those sources."""

from fractions import Fraction
import functools
import json
import math
import os
from pathlib import Path
import re

import av
import jax
import librosa
import ml_collections
import numpy as np
import PIL.Image
import pytest
import soundfile as sf
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import manifest as manifest_config
from mmjax.data import datasets
from mmjax.data import manifest
from mmjax.data import pipeline
from mmjax.data import preprocess
from mmjax.data.errors import DataError
from mmjax.evaluation import results as eval_results
from mmjax.models.multimodal import build_classifier

RATE = 8000
LABELS = ("cat", "dog", "owl")


def _write_csv(path: Path, header, rows) -> Path:
  """Writes a CSV manifest with Python's csv module (quoting as needed)."""
  import csv  # pylint: disable=g-import-not-at-top
  with path.open("w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return path


def _write_jsonl(path: Path, rows) -> Path:
  path.write_text("".join(json.dumps(r) + "\n" for r in rows),
                  encoding="utf-8")
  return path


def _read_all(builder) -> dict:
  """`{row number: (split, numpy example)}` of every split."""
  return {int(ex["row"]): (split, ex)
          for split in builder.info.splits
          for ex in tfds.as_numpy(builder.as_dataset(split=split))}


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
  path = _write_csv(root / "data.csv",
                    ["image", "audio", "text", "label", "split"], CSV_ROWS)
  return manifest.get_builder(path, tmp_path_factory.mktemp("tfds_csv"),
                              sample_rate=RATE)


def test_csv_features_equal_the_source_files(csv_builder, sources):
  _, images, recordings = sources
  examples = _read_all(csv_builder)
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
  op = preprocess.parse(f'tokenize(tokenizer="{directory}", max_length=8)')
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
  path = _write_jsonl(tmp_path / "data.jsonl", rows)
  builder = manifest.get_builder(path, tmp_path / "tfds", image_size=3,
                                 split_fractions=(0.5, 0.25, 0.25))
  examples = _read_all(builder)
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
  splits = manifest.assign_splits(manifest.read_manifest(path),
                                  (0.5, 0.25, 0.25), 0)
  assert {n: s for n, (s, _) in examples.items()} == {
      i + 1: s for i, s in enumerate(splits)}


def _label_manifest(tmp_path: Path, per_label: int = 10) -> Path:
  rows = [("x", LABELS[i % 3]) for i in range(3 * per_label)]
  return _write_csv(tmp_path / "labels.csv", ["text", "label"], rows)


def test_stratified_split_is_seeded(tmp_path):
  parsed = manifest.read_manifest(_label_manifest(tmp_path))
  first = manifest.assign_splits(parsed, (0.8, 0.1, 0.1), seed=0)
  assert first == manifest.assign_splits(parsed, (0.8, 0.1, 0.1), seed=0)
  assert first != manifest.assign_splits(parsed, (0.8, 0.1, 0.1), seed=1)
  for label in LABELS:
    of_label = [s for s, r in zip(first, parsed.rows)
                if r.values["label"] == label]
    assert [of_label.count(s) for s in manifest.SPLITS] == [8, 1, 1]


def test_every_label_keeps_a_train_row(tmp_path):
  parsed = manifest.read_manifest(_label_manifest(tmp_path, per_label=1))
  assert manifest.assign_splits(parsed, (0.3, 0.4, 0.3)) == ["train"] * 3
  with pytest.raises(DataError, match="label 'cat' is in no train row"):
    manifest.assign_splits(parsed, (0.0, 0.5, 0.5))


def _text_manifest(tmp_path: Path, texts) -> Path:
  rows = [(f"{i}.png", t, LABELS[i % 2]) for i, t in enumerate(texts)]
  for i in range(len(texts)):
    PIL.Image.new("RGB", (4, 4), (i, 0, 0)).save(tmp_path / f"{i}.png")
  return _write_csv(tmp_path / "data.csv", ["image", "text", "label"], rows)


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
  assert _read_all(edited)[4][1]["text"] == b"e"

  stat = (tmp_path / "0.png").stat()
  os.utime(tmp_path / "0.png", ns=(stat.st_atime_ns,
                                   stat.st_mtime_ns + 10**9))
  touched = manifest.ManifestConfig.make(manifest.read_manifest(path))
  assert touched.name not in (first.builder_config.name,
                              edited.builder_config.name)
  other_seed = manifest.ManifestConfig.make(manifest.read_manifest(path),
                                            split_seed=1)
  assert other_seed.name != touched.name


# Errors: each names the manifest, the line (and row) and the file.


def _assert_names(error: DataError, *parts) -> None:
  message = str(error)
  for part in parts:
    assert str(part) in message, f"{part!r} not in {message!r}"


def test_missing_file(tmp_path):
  path = _text_manifest(tmp_path, ["a", "b", "c"])
  (tmp_path / "2.png").unlink()
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  _assert_names(e.value, path, "line 4 (row 3)", "column image",
                tmp_path / "2.png", "no such file")


def test_unreadable_image_header(tmp_path):
  path = _text_manifest(tmp_path, ["a", "b", "c"])
  (tmp_path / "1.png").write_bytes(b"not a png at all")
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  _assert_names(e.value, path, "line 3 (row 2)", tmp_path / "1.png",
                "cannot read")


def test_corrupt_image_data_fails_at_preparation(tmp_path):
  """A PNG cut after its header opens, so it fails when decoded."""
  PIL.Image.fromarray(np.random.default_rng(0).integers(
      0, 256, (32, 32, 3), np.uint8)).save(tmp_path / "cut.png")
  data = (tmp_path / "cut.png").read_bytes()
  (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
  path = _write_csv(tmp_path / "data.csv", ["image", "label"],
                    [("cut.png", "cat")])
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds", image_size=8)
  _assert_names(e.value, path, "line 2 (row 1)", tmp_path / "cut.png",
                "cannot read")


def test_unreadable_audio(tmp_path):
  sf.write(tmp_path / "good.wav", np.zeros(100, np.int16), RATE)
  (tmp_path / "bad.wav").write_bytes(b"RIFF....garbage" * 10)
  path = _write_jsonl(tmp_path / "data.jsonl", [
      {"audio": "good.wav", "label": "cat"},
      {"audio": "bad.wav", "label": "cat"}])
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  _assert_names(e.value, path, "line 2 (row 2)", "column audio",
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
  path = _write_csv(tmp_path / "data.csv", ["image", "audio", "label", "split"],
                    rows)
  with pytest.raises(DataError, match="1.png: no such file"):
    manifest.get_builder(path, tmp_path / "tfds")  # "fail" is the default
  with pytest.raises(ValueError, match="bad_examples must be one of"):
    manifest.get_builder(path, tmp_path / "tfds", bad_examples="ignore")
  builder = manifest.get_builder(path, tmp_path / "tfds", bad_examples="skip")
  examples = _read_all(builder)
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
  assert sorted(_read_all(again)) == [1, 2, 5, 6]


def test_images_of_different_sizes(tmp_path):
  path = _text_manifest(tmp_path, ["a", "b", "c"])
  PIL.Image.new("RGB", (5, 4)).save(tmp_path / "2.png")
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  _assert_names(e.value, path, "line 4 (row 3)", tmp_path / "2.png",
                "5 x 4", "line 2 (row 1)", "4 x 4")


def test_unknown_split_names_the_line_after_a_multiline_field(tmp_path):
  path = _write_csv(tmp_path / "data.csv", ["text", "label", "split"], [
      ("one\ntwo", "cat", "train"), ("x", "cat", "trian")])
  with pytest.raises(DataError) as e:
    manifest.read_manifest(path)
  _assert_names(e.value, path, "line 4 (row 2)", "'trian'", "validation")


def test_label_unseen_in_train(tmp_path):
  path = _write_csv(tmp_path / "data.csv", ["text", "label", "split"], [
      ("a", "cat", "train"), ("b", "dog", "validation"), ("c", "cat", "test"),
      ("d", "dog", "test")])
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  _assert_names(e.value, path, "'dog'", "line(s) 3 (row 2), 5 (row 4)")


def test_unknown_column(tmp_path):
  path = _write_csv(tmp_path / "data.csv", ["text", "label", "caption", "x"],
                    [("a", "cat", "a cat", "1")])
  with pytest.raises(DataError) as e:
    manifest.read_manifest(path)
  _assert_names(e.value, path, "'caption', 'x'", "allowed columns",
                "video")


def test_empty_field(tmp_path):
  path = _write_jsonl(tmp_path / "data.jsonl", [
      {"text": "a", "label": "cat"}, {"text": "  ", "label": "cat"}])
  with pytest.raises(DataError) as e:
    manifest.read_manifest(path)
  _assert_names(e.value, path, "line 2 (row 2)", "column text", "empty")


def test_missing_manifest(tmp_path):
  path = tmp_path / "nowhere.csv"
  with pytest.raises(DataError) as e:
    manifest.get_builder(path, tmp_path / "tfds")
  _assert_names(e.value, path, "no such manifest", ".csv", ".jsonl", "label")


def test_registry_needs_a_manifest():
  with pytest.raises(ValueError, match=re.escape("config.data.manifest")):
    datasets.get_builder(ml_collections.ConfigDict(
        {"name": "multimodal_manifest", "manifest": ""}))


def test_config_reads_modalities_and_classes(tmp_path):
  path = _write_jsonl(tmp_path / "data.jsonl", [
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


# Video.


def _write_video(path: Path, frames: np.ndarray, fps: int, codec: str,
                 pix_fmt: str) -> Path:
  """Writes uint8 [T, H, W, 3] RGB frames at `fps` frames/s with PyAV."""
  with av.open(os.fspath(path), "w") as container:
    stream = container.add_stream(codec, rate=fps)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = pix_fmt
    for frame in frames:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")))
    container.mux(stream.encode())  # Flushes the encoder.
  return path


def _direct_indices(num_frames: int, source_rate: Fraction, frame_rate,
                    max_seconds=10) -> list:
  """The source frame of each stored frame of a video of `num_frames`
  frames at `source_rate`, in exact arithmetic: stored frame k (at k /
  frame_rate s, before min(duration, max_seconds)) shows frame floor(k *
  source_rate / frame_rate)."""
  rate = Fraction(frame_rate)
  seconds = min(Fraction(num_frames) / source_rate, Fraction(max_seconds))
  return [min(math.floor(k * source_rate / rate), num_frames - 1)
          for k in range(math.ceil(seconds * rate))]


# (codec, container suffix, pixel format): the two lossless ones decode to
# exactly the frames written.
LOSSLESS = [("ffv1", "mkv", "bgr0"), ("png", "avi", "rgb24")]
# The lossy MPEG-4 clip has flat colours, whose decoded pixels stay within
# this many levels (measured: 4, from the YUV 4:2:0 round trip).
LOSSY_TOLERANCE = 8


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  """`(root, {path: (uint8 [T, 16, 16, 3] frames, frames/s)})`: lossless
  clips (6 random frames at 4 frames/s, 5 at 8), a lossy MPEG-4 one (6 flat
  colours at 4 frames/s), a frame folder (PNG, BMP of another size, a
  text file to ignore) and a 0.5 s recording `snd.wav`."""
  root = tmp_path_factory.mktemp("clips")
  rng = np.random.default_rng(3)
  sources = {}
  for (codec, suffix, pix_fmt), (count, fps) in zip(LOSSLESS, [(6, 4), (5, 8)]):
    frames = rng.integers(0, 256, (count, 16, 16, 3), np.uint8)
    name = f"{codec}.{suffix}"
    _write_video(root / name, frames, fps, codec, pix_fmt)
    sources[name] = (frames, fps)
  flat = np.stack([np.full((16, 16, 3), (40 * i, 200 - 30 * i, 100), np.uint8)
                   for i in range(6)])
  _write_video(root / "lossy.mp4", flat, 4, "mpeg4", "yuv420p")
  sources["lossy.mp4"] = (flat, 4)
  (root / "frames").mkdir()
  folder = rng.integers(0, 256, (3, 16, 16, 3), np.uint8)
  PIL.Image.fromarray(folder[0]).save(root / "frames/00.png")
  PIL.Image.fromarray(rng.integers(0, 256, (12, 20, 3), np.uint8)).save(
      root / "frames/01.bmp")
  with PIL.Image.open(root / "frames/01.bmp") as image:
    folder[1] = np.asarray(image.resize((16, 16),
                                        PIL.Image.Resampling.BICUBIC))
  PIL.Image.fromarray(folder[2]).save(root / "frames/02.png")
  (root / "frames/notes.txt").write_text("not a frame")
  sources["frames"] = (folder, None)
  sf.write(root / "snd.wav", rng.integers(-8000, 8000, RATE // 2, np.int16),
           RATE, subtype="PCM_16")
  return root, sources


def _video_manifest(root: Path, names, name: str = "video.csv") -> Path:
  return _write_csv(root / name, ["video", "label"],
                    [(n, LABELS[i % 2]) for i, n in enumerate(names)])


@pytest.mark.parametrize("frame_rate", [
    8, 4, Fraction(15, 2), Fraction(24000, 1001), 1])
@pytest.mark.parametrize("max_seconds", [10, Fraction(7, 10), Fraction(2, 3)])
def test_resample_indices_match_a_direct_computation(frame_rate, max_seconds):
  """Uneven source times (multiples of 1/30 s, so many coincide exactly with
  output times) and 239 frames at 23.976 frames/s (at that output rate,
  frame i's float time is often one bit above i / float(frame_rate), and
  the float duration times the rate above 239: the tolerance); exact
  rational arithmetic as the reference."""
  rng = np.random.default_rng(0)
  uneven = np.cumsum([0] + list(rng.integers(1, 6, 20))) * Fraction(1, 30)
  film = np.arange(239) * Fraction(1001, 24000)
  for times, duration in ((uneven, uneven[-1] + Fraction(1, 30)),
                          (film, 239 * Fraction(1001, 24000))):
    seconds = min(duration, Fraction(max_seconds))
    expected = [max([i for i, t in enumerate(times)
                     if t <= Fraction(k) / frame_rate], default=0)
                for k in range(math.ceil(seconds * frame_rate))]
    got = manifest.resample_indices([float(t) for t in times],
                                    float(duration), float(frame_rate),
                                    float(max_seconds))
    assert got.dtype == np.int64
    assert got.tolist() == expected


@pytest.mark.parametrize("name", [f"{c}.{s}" for c, s, _ in LOSSLESS])
@pytest.mark.parametrize("frame_rate, max_seconds", [
    (8.0, 10.0), (4.0, 10.0), (2.0, 10.0), (8.0, 1.0), (3.0, 10.0)])
def test_lossless_video_is_decoded_and_resampled(clips, name, frame_rate,
                                                 max_seconds):
  """E.g. 6 frames at 4 frames/s stored at 8 frames/s: each frame twice."""
  root, sources = clips
  frames, fps = sources[name]
  parsed = manifest.read_manifest(_video_manifest(root, [name]))
  video = manifest.read_video(parsed, parsed.rows[0], frame_rate, 16,
                              max_seconds)
  indices = _direct_indices(len(frames), Fraction(fps), frame_rate,
                            max_seconds)
  assert video.dtype == np.uint8
  assert video.shape == (len(indices), 16, 16, 3)
  np.testing.assert_array_equal(video, frames[indices])
  if (name, frame_rate, max_seconds) == ("ffv1.mkv", 8.0, 10.0):
    assert indices == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_lossy_video_and_resize(clips):
  root, sources = clips
  flat, fps = sources["lossy.mp4"]
  parsed = manifest.read_manifest(_video_manifest(root, ["lossy.mp4"]))
  video = manifest.read_video(parsed, parsed.rows[0], 8.0, 16)
  expected = flat[_direct_indices(len(flat), Fraction(fps), 8)]
  assert video.shape == expected.shape == (12, 16, 16, 3)
  np.testing.assert_allclose(video, expected, atol=LOSSY_TOLERANCE)
  small = manifest.read_video(parsed, parsed.rows[0], 8.0, 5)
  assert small.shape == (12, 5, 5, 3)  # Flat colours stay flat.
  np.testing.assert_allclose(small, expected[:, :5, :5], atol=LOSSY_TOLERANCE)


def test_frame_folder(clips):
  """Images in file-name order (the BMP of another size resized, the text
  file ignored), one stored frame each, or at `folder_rate`."""
  root, sources = clips
  frames, _ = sources["frames"]
  parsed = manifest.read_manifest(_video_manifest(root, ["frames"]))
  row = parsed.rows[0]
  np.testing.assert_array_equal(
      manifest.read_video(parsed, row, 8.0, 16), frames)
  np.testing.assert_array_equal(
      manifest.read_video(parsed, row, 8.0, 16, folder_rate=4.0),
      frames[_direct_indices(3, Fraction(4), 8)])
  np.testing.assert_array_equal(
      manifest.read_video(parsed, row, 8.0, 16, max_seconds=0.25),
      frames[:2])


def test_video_errors_name_the_row_and_file(tmp_path):
  (tmp_path / "garbage.mp4").write_bytes(b"\x00\x01 not a video" * 40)
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty/readme.txt").write_text("no frames here")
  (tmp_path / "broken").mkdir()
  PIL.Image.new("RGB", (4, 4)).save(tmp_path / "broken/0.png")
  (tmp_path / "broken/1.png").write_bytes(b"not a png")
  sf.write(tmp_path / "sound.wav", np.zeros(800, np.int16), RATE)
  names = ["garbage.mp4", "empty", "broken", "sound.wav", "gone.mp4"]
  path = _video_manifest(tmp_path, names)
  parsed = manifest.read_manifest(path)
  reasons = ["Invalid data", "without PNG, JPEG or BMP", "cannot identify",
             "no video stream", "no such file"]
  for row, name, reason in zip(parsed.rows, names, reasons):
    with pytest.raises(DataError) as e:
      manifest.read_video(parsed, row, 8.0, 16)
    file = tmp_path / name / "1.png" if name == "broken" else tmp_path / name
    _assert_names(e.value, path, f"line {row.line} (row {row.number})",
                  "column video", file, reason)
  with pytest.raises(DataError) as e:  # In preparation, too.
    manifest.get_builder(_video_manifest(tmp_path, names[:1], "one.csv"),
                         tmp_path / "tfds")
  _assert_names(e.value, "line 2 (row 1)", tmp_path / "garbage.mp4",
                "cannot read")
  with pytest.raises(DataError) as e:  # The fingerprint finds it first.
    manifest.get_builder(_video_manifest(tmp_path, names[4:], "gone.csv"),
                         tmp_path / "tfds")
  _assert_names(e.value, "line 2 (row 1)", tmp_path / "gone.mp4",
                "no such file")


# Rows of the prepared video manifest: (video, audio, label, split).
VIDEO_ROWS = [("ffv1.mkv", "snd.wav", "cat", "train"),
              ("png.avi", "snd.wav", "dog", "train"),
              ("frames", "snd.wav", "cat", "validation"),
              ("lossy.mp4", "snd.wav", "dog", "test")]


@pytest.fixture(scope="module")
def video_manifest(clips):
  root, _ = clips
  return _write_csv(root / "av.csv", ["video", "audio", "label", "split"],
                    VIDEO_ROWS)


def test_video_manifest_is_prepared(clips, video_manifest, tmp_path):
  _, sources = clips
  builder = manifest.get_builder(video_manifest, tmp_path, video_size=16,
                                 sample_rate=RATE)
  assert builder.builder_config.name.startswith(
      "audio-video_sr8000_v16_fr8_10s_seed0_")
  assert builder.info.features["video"].shape == (None, 16, 16, 3)
  examples = _read_all(builder)
  for number, (video, _, label, split) in enumerate(VIDEO_ROWS, 1):
    got_split, ex = examples[number]
    assert got_split == split
    assert builder.info.features["label"].names[ex["label"]] == label
    assert ex["audio"].shape == (RATE // 2,)
    frames, fps = sources[video]
    expected = (frames if fps is None else
                frames[_direct_indices(len(frames), Fraction(fps), 8)])
    assert ex["video"].dtype == np.uint8
    assert ex["video"].shape == expected.shape
    np.testing.assert_allclose(
        ex["video"], expected,
        atol=LOSSY_TOLERANCE if video == "lossy.mp4" else 0)
  assert manifest.ManifestConfig.make(
      manifest.read_manifest(video_manifest), video_size=16,
      video_soundtrack=False).name == builder.builder_config.name
  other = manifest.ManifestConfig.make(
      manifest.read_manifest(video_manifest), frame_rate=7.5,
      max_video_seconds=2)
  assert "_v64_fr7p5_2s_" in other.name
  assert other.name.split("_")[-1] != builder.builder_config.name.split(
      "_")[-1]


def test_video_settings_leave_other_manifests_alone(tmp_path):
  """Without a video column the video settings change no config name (a
  manifest prepared before video support keeps its directory)."""
  parsed = manifest.read_manifest(_label_manifest(tmp_path))
  assert (manifest.ManifestConfig.make(parsed).name ==
          manifest.ManifestConfig.make(parsed, frame_rate=2.0, video_size=8,
                                       video_soundtrack=False).name)
  with pytest.raises(ValueError, match="frame_rate must be a number > 0"):
    manifest.ManifestConfig.make(parsed, frame_rate=0)
  with pytest.raises(ValueError, match="video_size must be an int >= 1"):
    manifest.ManifestConfig.make(parsed, video_size=1.5)


def test_frame_folder_fingerprint_sees_each_frame(tmp_path):
  folder = tmp_path / "frames"
  folder.mkdir()
  for i in range(2):
    PIL.Image.new("RGB", (4, 4), (i, 0, 0)).save(folder / f"{i}.png")
  parsed = manifest.read_manifest(_video_manifest(tmp_path, ["frames"]))
  before = manifest.fingerprint(parsed)
  PIL.Image.new("RGB", (4, 4), (9, 9, 9)).save(folder / "1.png")
  stat = (folder / "1.png").stat()
  os.utime(folder / "1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  assert manifest.fingerprint(parsed) != before


# Soundtracks.


def _tone(seconds: float, rate: int, hz: float, channels: int = 1
          ) -> np.ndarray:
  """int16 [channels, n]: channel c a sine of hz * (1 + c / 2) Hz at half
  full scale."""
  t = np.arange(round(seconds * rate)) / rate
  return np.stack([np.round(16384 * np.sin(2 * np.pi * hz * (1 + c / 2) * t))
                   for c in range(channels)]).astype(np.int16)


def _write_av(path: Path, frames, fps: int, samples=None, rate: int = RATE,
              *, vcodec: str = "ffv1", pix_fmt: str = "bgr0",
              acodec: str = "pcm_s16le", video_start: int = 0,
              audio_start: int = 0) -> Path:
  """Writes, with PyAV, uint8 [T, H, W, 3] RGB frames (None: no video) at
  `fps` frames/s, frame i at (video_start + i) / fps s, and int16 [channels,
  n] samples (None: no audio) at `rate` Hz, sample j at (audio_start + j) /
  rate s (in 400-sample frames, which PyAV's encoder converts to the
  codec's sample format)."""
  with av.open(os.fspath(path), "w") as container:
    if frames is not None:
      video = container.add_stream(vcodec, rate=fps)
      video.height, video.width = frames.shape[1:3]
      video.pix_fmt = pix_fmt
    if samples is not None:
      audio = container.add_stream(acodec, rate=rate)
      audio.layout = {1: "mono", 2: "stereo"}[len(samples)]
    for i, pixels in enumerate(() if frames is None else frames):
      frame = av.VideoFrame.from_ndarray(pixels, "rgb24")
      frame.pts = video_start + i
      container.mux(video.encode(frame))
    if frames is not None:
      container.mux(video.encode())
    for start in range(0, 0 if samples is None else samples.shape[1], 400):
      packed = samples[:, start:start + 400].T.reshape(1, -1)  # Interleaved.
      frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(packed), "s16",
                                         audio.layout.name)
      frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
      frame.pts = audio_start + start
      container.mux(audio.encode(frame))
    if samples is not None:
      container.mux(audio.encode())
  return path


# The lossy AAC tones decode within this RMS error (fraction of full scale;
# measured: 0.018 at 8 kHz), with no delay: the encoder's 1024 priming
# samples are skipped (by the MP4 edit list, or by their timestamps).
AAC_RMS_TOLERANCE = 0.05


def _rms(a: np.ndarray, b: np.ndarray) -> float:
  """RMS difference (full scale 1) of two int16 signals, over the shorter."""
  n = min(len(a), len(b))
  return float(np.sqrt(np.mean(((a[:n] - b[:n]) / 32768.0) ** 2)))


@pytest.fixture(scope="module")
def soundtracks(clips):
  """`(root, {name: int16 [n] expected soundtrack at RATE Hz})`, written
  next to `clips`: ffv1.mkv's and png.avi's frames with lossless tones from
  0 s (`*_sound.*`); tones starting 0.25 s after the first frame (`late`)
  or 0.25 s before it (`early`); 16 kHz stereo FLAC; MPEG-4 with AAC;
  AAC audio only (`tone.m4a`); a video without audio (`silent.mkv`)."""
  root, sources = clips
  rng = np.random.default_rng(5)
  frames = rng.integers(0, 256, (4, 16, 16, 3), np.uint8)  # 0.5 s at 8 Hz.
  tone = _tone(0.5, RATE, 440)
  expected = {}
  for name, codec, hz in (("ffv1.mkv", "pcm_s16le", 440),
                          ("png.avi", "pcm_s16le", 660)):
    clip, fps = sources[name]
    sound = _tone(len(clip) / fps, RATE, hz)
    stem, suffix = name.split(".")
    codec_of = {"ffv1": ("ffv1", "bgr0"), "png": ("png", "rgb24")}[stem]
    _write_av(root / f"{stem}_sound.{suffix}", clip, fps, sound,
              vcodec=codec_of[0], pix_fmt=codec_of[1], acodec=codec)
    expected[f"{stem}_sound.{suffix}"] = sound[0]
  _write_av(root / "late.mkv", frames, 8, tone, audio_start=RATE // 4)
  expected["late.mkv"] = np.concatenate([np.zeros(RATE // 4, np.int16),
                                         tone[0]])
  _write_av(root / "early.mkv", frames, 8, tone, video_start=2)
  expected["early.mkv"] = tone[0, RATE // 4:]
  stereo = _tone(0.5, 16000, 440, channels=2)
  _write_av(root / "stereo16k.mkv", frames, 8, stereo, 16000, acodec="flac")
  expected["stereo16k.mkv"] = manifest.to_int16(librosa.resample(
      stereo.mean(axis=0) / 32768.0, orig_sr=16000, target_sr=RATE,
      res_type="soxr_hq"))
  _write_av(root / "tone.mp4", frames, 8, tone, vcodec="mpeg4",
            pix_fmt="yuv420p", acodec="aac")
  expected["tone.mp4"] = tone[0]
  _write_av(root / "tone.m4a", None, 8, tone, acodec="aac")
  expected["tone.m4a"] = tone[0]
  _write_av(root / "silent.mkv", frames, 8)
  return root, expected


def test_audio_column_decodes_media_files_with_pyav(soundtracks):
  """Files soundfile cannot read: lossless PCM in MKV exactly, 16 kHz
  stereo FLAC in MKV as soundfile's path would (mean, librosa), AAC in
  M4A within the tolerance."""
  root, expected = soundtracks
  names = ["ffv1_sound.mkv", "stereo16k.mkv", "tone.m4a"]
  parsed = manifest.read_manifest(_write_csv(
      root / "media.csv", ["audio", "label"], [(n, "cat") for n in names]))
  for row, name in zip(parsed.rows, names):
    audio = manifest.read_audio(parsed, row, RATE)
    assert audio.dtype == np.int16
    if name == "tone.m4a":
      assert 4000 <= len(audio) <= 4096  # The last AAC frame is padded.
      assert _rms(audio, expected[name]) < AAC_RMS_TOLERANCE
    else:
      np.testing.assert_allclose(audio, expected[name], atol=1)
      if name == "ffv1_sound.mkv":
        np.testing.assert_array_equal(audio, expected[name])


def test_soundtrack_is_decoded_and_aligned(soundtracks):
  """Lossless soundtracks exactly, from the first video frame: zeros before
  a late start, an early start cut, cut to max_seconds; resampled like an
  audio file; AAC in MP4 within the tolerance."""
  root, expected = soundtracks
  names = ["ffv1_sound.mkv", "png_sound.avi", "late.mkv", "early.mkv",
           "stereo16k.mkv", "tone.mp4"]
  parsed = manifest.read_manifest(_video_manifest(root, names, "st.csv"))
  for row, name in zip(parsed.rows, names):
    audio = manifest.read_soundtrack(parsed, row, RATE)
    assert audio.dtype == np.int16
    if name == "tone.mp4":
      assert _rms(audio, expected[name]) < AAC_RMS_TOLERANCE
    elif name == "stereo16k.mkv":
      np.testing.assert_allclose(audio, expected[name], atol=1)
    else:
      np.testing.assert_array_equal(audio, expected[name])
  late = manifest.read_soundtrack(parsed, parsed.rows[2], RATE,
                                  max_seconds=0.4)
  np.testing.assert_array_equal(late, expected["late.mkv"][:3200])
  stereo = manifest.read_manifest(_write_csv(
      root / "stereo.csv", ["audio", "label"], [("stereo16k.mkv", "cat")]))
  np.testing.assert_array_equal(
      manifest.read_soundtrack(parsed, parsed.rows[4], RATE),
      manifest.read_audio(stereo, stereo.rows[0], RATE))


def test_soundtracks_decide_the_audio_modality(soundtracks, clips):
  """Audio when every video has a soundtrack (and video_soundtrack), none
  when none has (a frame folder has none), an error when some have."""
  root, _ = soundtracks

  def modalities(names, soundtrack=True, name="m.csv"):
    parsed = manifest.read_manifest(_video_manifest(root, names, name))
    return manifest.modalities_of(parsed, soundtrack)
  assert modalities(["late.mkv", "tone.mp4"]) == ("audio", "video")
  assert modalities(["late.mkv", "tone.mp4"], False) == ("video",)
  assert modalities(["silent.mkv", "frames", "ffv1.mkv"]) == ("video",)
  assert manifest.modalities_of(manifest.read_manifest(
      _write_csv(root / "both.csv", ["video", "audio", "label"],
                 [("silent.mkv", "snd.wav", "cat")]))) == ("audio", "video")
  for names, without, kind in (
      (["late.mkv", "tone.mp4", "silent.mkv", "frames"], "silent.mkv",
       "no audio stream"),
      (["frames", "late.mkv"], "frames", "a frame folder")):
    path = _video_manifest(root, names, "mixed.csv")
    with pytest.raises(DataError) as e:
      manifest.modalities_of(manifest.read_manifest(path))
    row = names.index(without) + 1
    _assert_names(e.value, path, f"line {row + 1} (row {row})",
                  "column video", root / without, kind,
                  "line 2 (row 1)" if row > 1 else "line 3 (row 2)",
                  "data.video_soundtrack=False")
    with pytest.raises(DataError):  # As the builder's config.
      manifest.ManifestConfig.make(manifest.read_manifest(path))
    assert manifest.ManifestConfig.make(manifest.read_manifest(path),
                                        video_soundtrack=False).modalities == (
                                            "video",)


def test_soundtrack_errors_name_the_row_and_file(soundtracks):
  root, _ = soundtracks
  (root / "noise.mp4").write_bytes(b"\x00\x01 not a video" * 40)
  names = ["silent.mkv", "frames", "noise.mp4", "absent.mkv"]
  path = _video_manifest(root, names, "bad_st.csv")
  parsed = manifest.read_manifest(path)
  reasons = ["no audio stream", "frame folder", "Invalid data",
             "no such file"]
  for row, name, reason in zip(parsed.rows, names, reasons):
    with pytest.raises(DataError) as e:
      manifest.read_soundtrack(parsed, row, RATE)
    _assert_names(e.value, path, f"line {row.line} (row {row.number})",
                  "column video", root / name, reason)
  files = {"silent.mkv": "PyAV: no audio stream",
           "noise.mp4": "PyAV: Invalid data"}
  audio_path = _write_csv(root / "bad_audio.csv", ["audio", "label"],
                          [(name, "cat") for name in files])
  parsed = manifest.read_manifest(audio_path)
  for row, (name, reason) in zip(parsed.rows, files.items()):
    with pytest.raises(DataError) as e:
      manifest.read_audio(parsed, row, RATE)
    _assert_names(e.value, audio_path, f"line {row.line} (row {row.number})",
                  "column audio", root / name, "cannot read",
                  "soundfile: Format not recognised", reason)
  with pytest.raises(DataError) as e:  # Probing, too.
    manifest.modalities_of(manifest.read_manifest(
        _video_manifest(root, ["late.mkv", "noise.mp4"], "probe.csv")))
  _assert_names(e.value, "line 3 (row 2)", root / "noise.mp4", "cannot read")


# Rows of the prepared soundtrack manifest: (video, label, split).
SOUNDTRACK_ROWS = [("ffv1_sound.mkv", "cat", "train"),
                   ("png_sound.avi", "dog", "train"),
                   ("late.mkv", "cat", "validation"),
                   ("tone.mp4", "dog", "test")]


@pytest.fixture(scope="module")
def soundtrack_manifest(soundtracks):
  root, _ = soundtracks
  return _write_csv(root / "soundtracks.csv", ["video", "label", "split"],
                    SOUNDTRACK_ROWS)


def test_soundtrack_manifest_is_prepared(soundtracks, soundtrack_manifest,
                                         tmp_path):
  _, expected = soundtracks
  builder = manifest.get_builder(soundtrack_manifest, tmp_path,
                                 video_size=16, sample_rate=RATE)
  assert builder.builder_config.name.startswith(
      "audio-video_sr8000_v16_fr8_10s_seed0_")
  assert builder.info.features["audio"].dtype == np.int16
  assert builder.info.features["video"].shape == (None, 16, 16, 3)
  examples = _read_all(builder)
  for number, (video, _, split) in enumerate(SOUNDTRACK_ROWS, 1):
    got_split, ex = examples[number]
    assert got_split == split
    assert ex["audio"].dtype == np.int16
    assert ex["video"].dtype == np.uint8
    if video == "tone.mp4":
      assert _rms(ex["audio"], expected[video]) < AAC_RMS_TOLERANCE
    else:
      np.testing.assert_array_equal(ex["audio"], expected[video])
  assert examples[1][1]["video"].shape == (12, 16, 16, 3)
  parsed = manifest.read_manifest(soundtrack_manifest)
  off = manifest.ManifestConfig.make(parsed, video_size=16,
                                     video_soundtrack=False)
  assert off.modalities == ("video",)
  assert off.name.startswith("video_v16_fr8_10s_seed0_")
  silent = manifest.read_manifest(_video_manifest(
      soundtrack_manifest.parent, ["silent.mkv"], "silent.csv"))
  on, off = (manifest.ManifestConfig.make(silent, video_soundtrack=s)
             for s in (True, False))
  assert on.modalities == off.modalities == ("video",)
  assert on.name != off.name  # The setting is in the hash with a video.


def test_config_on_a_video_manifest_runs_the_model(
    video_manifest, soundtrack_manifest, tmp_path):
  """configs/manifest.py on videos with soundtracks (and on video + audio
  columns, or with `video_soundtrack=false`: the modalities): a frame
  encoder, the aligned clip window, and a forward pass on one pipeline
  batch."""
  assert manifest_config.get_config(
      f"manifest={video_manifest}").modalities == ("audio", "video")
  off = manifest_config.get_config(
      f"manifest={soundtrack_manifest},video_soundtrack=false")
  assert off.modalities == ("video",)
  assert not off.data.video_soundtrack
  assert set(off.pp_train) == {"example", "video"}
  with pytest.raises(ValueError, match="video_soundtrack='maybe'"):
    manifest_config.get_config(
        f"manifest={soundtrack_manifest},video_soundtrack=maybe")
  c = manifest_config.get_config(f"manifest={soundtrack_manifest}")
  assert c.modalities == ("audio", "video")
  assert c.data.video_soundtrack
  assert c.model.encoders.video.name == "frame_encoder"
  assert c.model.encoders.video.frame_rate == 8.0
  assert set(c.pp_train) == {"example", "audio", "video"}
  assert "mode='random'" in c.pp_train.example
  assert "mode='center'" in c.pp_eval.example
  c.data.data_dir = str(tmp_path)
  builder = datasets.get_builder(c.data)
  assert builder.info.features["video"].shape == (None, 64, 64, 3)
  assert builder.info.features["audio"].dtype == np.int16
  batch = next(pipeline.train_batches(
      builder, "train", modalities=c.modalities, pp=c.pp_train,
      global_batch_size=2, seed=0))
  assert batch["video"]["frames"].shape == (2, 8, 32, 32, 3)
  # The train clips: 12 stored frames (any window is real) and 5 (padded).
  assert sorted(batch["video"]["frame_mask"].sum(axis=1)) == [5, 8]
  assert batch["audio"].shape == (2, RATE)
  assert (np.abs(batch["audio"]).max(axis=1) > 0.4).all()  # The tones.
  model = build_classifier(c)
  # Compiled: a third of the time of eager initialisation on a CPU.
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), batch)
  logits = jax.jit(model.apply)(variables, batch)
  assert logits.shape == (2, 2)
  assert np.isfinite(np.asarray(logits)).all()
