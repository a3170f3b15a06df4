"""Raw rows -> the features a run's dataset stores (mmjax/predict/rows.py,
decode.py): other sizes, channels, rates and formats than the builder's;
empty cells are missing modalities; errors name the row, column and file.
No model: fast."""

import librosa
import numpy as np
import PIL.Image
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from mmjax.data.errors import DataError
from mmjax.predict import decode, rows

# What av_digits stores (mmjax/data/builders/av_digits.py).
FEATURES = {"image": tfds.features.Image(shape=(28, 28, 1), dtype=np.uint8),
            "audio": tfds.features.Audio(shape=(None,), dtype=np.int16,
                                         sample_rate=8000)}


def test_files_decode_to_the_stored_features(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (56, 40, 3), np.uint8)
  PIL.Image.fromarray(rgb).save(tmp_path / "big.jpg")
  samples = rng.uniform(-0.5, 0.5, 22050)  # 1 s at 22.05 kHz
  sf.write(tmp_path / "sound.ogg", samples, 22050)
  given = rows.from_dicts([{"image": "big.jpg", "audio": "sound.ogg"}],
                          base_dir=tmp_path)
  example, present = decode.decode(given, given.rows[0], ("image", "audio"),
                                   FEATURES, {})
  assert present == {"image": 1.0, "audio": 1.0}
  # Pillow's RGB, resized (bicubic) to the stored size, then grey.
  expected = PIL.Image.open(tmp_path / "big.jpg").convert("RGB")
  expected = expected.resize((28, 28), PIL.Image.Resampling.BICUBIC)
  np.testing.assert_array_equal(
      example["image"], np.asarray(expected.convert("L"))[:, :, None])
  assert example["image"].dtype == np.uint8
  audio = example["audio"]
  assert audio.dtype == np.int16 and abs(len(audio) - 8000) <= 1
  written, rate = sf.read(tmp_path / "sound.ogg")  # lossy: read it back
  resampled = librosa.resample(written, orig_sr=rate, target_sr=8000,
                               res_type="soxr_hq")
  np.testing.assert_array_equal(audio, np.clip(np.round(
      resampled * 32768), -32768, 32767).astype(np.int16))


def test_frame_folder_decodes_to_the_stored_video(tmp_path):
  (tmp_path / "clip").mkdir()
  for i in range(3):
    PIL.Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(
        tmp_path / "clip" / f"{i:03d}.png")
  given = rows.from_dicts([{"video": "clip"}], base_dir=tmp_path)
  feature = tfds.features.Video(shape=(None, 8, 8, 3), dtype=np.uint8)
  example, _ = decode.decode(given, given.rows[0], ("video",),
                             {"video": feature}, {"frame_rate": 8.0})
  assert example["video"].shape == (3, 8, 8, 3)
  np.testing.assert_array_equal(example["video"][:, 0, 0, 0], [0, 40, 80])


def test_empty_cell_is_a_missing_modality(tmp_path):
  PIL.Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
  (tmp_path / "new.csv").write_text("image,audio\na.png,\n")
  manifest = rows.read(tmp_path / "new.csv")
  example, present = decode.decode(manifest, manifest.rows[0],
                                   ("image", "audio"), FEATURES, {})
  assert present == {"image": 1.0, "audio": 0.0}
  assert example["audio"].shape == (1,) and example["audio"].dtype == np.int16


def test_errors_name_line_column_and_file(tmp_path):
  (tmp_path / "bad.wav").write_text("not audio")
  (tmp_path / "new.csv").write_text("image,audio,label\n,bad.wav,3\n,,4\n")
  manifest = rows.read(tmp_path / "new.csv")
  with pytest.raises(DataError, match=r"new\.csv, line 2 \(row 1\), column "
                     r"audio: .*bad\.wav: cannot read it"):
    decode.decode(manifest, manifest.rows[0], ("image", "audio"), FEATURES, {})
  with pytest.raises(DataError, match=r"line 3 \(row 2\): none of the "
                     r"model's modalities"):
    decode.decode(manifest, manifest.rows[1], ("image", "audio"), FEATURES, {})
  given = rows.from_dicts([{"image": "a.png"}, {"image": "missing.png"}],
                          base_dir=tmp_path)
  with pytest.raises(DataError, match=r"rows\[1\], column image: .*"
                     r"missing\.png: no such file"):
    decode.decode(given, given.rows[1], ("image",), FEATURES, {})
  (tmp_path / "odd.csv").write_text("image,speaker\na.png,theo\n")
  with pytest.raises(DataError, match="unknown column.*'speaker'"):
    rows.read(tmp_path / "odd.csv")
