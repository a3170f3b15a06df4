"""Tests of mmjax.data.builders.sources (IDX and WAV readers, FSDD listing)."""

import gzip
import re
import struct
import warnings

import numpy as np
import pytest

from mmjax.data.builders import sources
from mmjax.data.errors import DataConversionWarning
from mmjax.data.errors import DataError

MNIST_CLASS_COUNTS = [773, 905, 834, 803, 788, 723, 756, 813, 787, 818]
FSDD_SPEAKERS = ["george", "jackson", "nicolas", "theo", "yweweler"]


def _sine(frequency, sample_rate, seconds=0.5, amplitude=0.5):
  t = np.arange(int(sample_rate * seconds)) / sample_rate
  return amplitude * np.sin(2 * np.pi * frequency * t)


# IDX.


@pytest.mark.parametrize("compress, name", [(True, "x.gz"), (False, "x")])
def test_read_idx_round_trip(tmp_path, write_idx, compress, name):
  array = np.random.default_rng(0).integers(0, 256, (7, 28, 28), np.uint8)
  path = write_idx(tmp_path / name, array, compress=compress)
  result = sources.read_idx(path)
  assert result.dtype == np.uint8
  np.testing.assert_array_equal(result, array)


def test_read_idx_labels_round_trip(tmp_path, write_idx):
  labels = np.arange(10, dtype=np.uint8)
  result = sources.read_idx(write_idx(tmp_path / "l.gz", labels), ndim=1)
  np.testing.assert_array_equal(result, labels)


def test_read_idx_size_mismatch_names_file(tmp_path):
  path = tmp_path / "images.gz"
  header = struct.pack(">HBB3I", 0, 8, 3, 10, 28, 28)
  path.write_bytes(gzip.compress(header + bytes(9 * 784)))
  with pytest.raises(DataError, match=re.escape(str(path))) as e:
    sources.read_idx(path)
  assert "7840" in str(e.value) and "7056" in str(e.value)


def test_read_idx_wrong_magic_names_file(tmp_path, write_idx):
  path = write_idx(tmp_path / "labels.gz", np.zeros(5, np.uint8))
  with pytest.raises(DataError, match="magic") as e:
    sources.read_idx(path, ndim=3)
  assert str(path) in str(e.value) and "0x00000803" in str(e.value)


def test_read_idx_not_gzip_names_file(tmp_path):
  path = tmp_path / "images.gz"
  path.write_bytes(b"not gzip at all")
  with pytest.raises(DataError, match=re.escape(str(path))):
    sources.read_idx(path)


def test_read_idx_truncated_gzip_names_file(tmp_path, write_idx):
  path = write_idx(tmp_path / "images.gz", np.ones((3, 28, 28), np.uint8))
  path.write_bytes(path.read_bytes()[:-10])
  with pytest.raises(DataError, match=re.escape(str(path))):
    sources.read_idx(path)


def test_load_mnist_count_mismatch(fake_manual_dir, write_idx):
  write_idx(fake_manual_dir / sources.MNIST_LABELS, np.zeros(3, np.uint8))
  with pytest.raises(DataError, match="same count"):
    sources.load_mnist(fake_manual_dir)


def test_load_mnist_label_out_of_range(fake_manual_dir, write_idx):
  labels = np.full(200, 10, np.uint8)
  write_idx(fake_manual_dir / sources.MNIST_LABELS, labels)
  with pytest.raises(DataError, match="outside 0-9"):
    sources.load_mnist(fake_manual_dir)


# WAV.


def test_read_wav_pcm16_unchanged(tmp_path, write_wav):
  samples = np.arange(-500, 500, dtype=np.int16)
  path = write_wav(tmp_path / "a.wav", samples)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    result = sources.read_wav(path)
  assert result.dtype == np.int16
  np.testing.assert_array_equal(result, samples)


def test_read_wav_truncated_names_file(tmp_path, write_wav):
  path = write_wav(tmp_path / "a.wav", np.ones(800, np.int16))
  path.write_bytes(path.read_bytes()[:500])
  with pytest.raises(DataError, match=re.escape(str(path))) as e:
    sources.read_wav(path)
  assert "16-bit PCM WAV" in str(e.value)


def test_read_wav_truncated_header_names_file(tmp_path, write_wav):
  path = write_wav(tmp_path / "a.wav", np.ones(800, np.int16))
  path.write_bytes(path.read_bytes()[:30])
  with pytest.raises(DataError, match="16-bit PCM WAV") as e:
    sources.read_wav(path)
  assert str(path) in str(e.value)


def test_read_wav_text_file_names_file(tmp_path):
  path = tmp_path / "notes.wav"
  path.write_text("this is not audio\n")
  with pytest.raises(DataError, match="16-bit PCM WAV") as e:
    sources.read_wav(path)
  assert str(path) in str(e.value)


def test_read_wav_empty_recording(tmp_path, write_wav):
  path = write_wav(tmp_path / "a.wav", np.zeros(0, np.int16))
  with pytest.raises(DataError, match="no samples"):
    sources.read_wav(path)


def test_read_wav_resamples_16k_to_8k(tmp_path, write_wav):
  path = write_wav(tmp_path / "a.wav", _sine(440, 16000), sample_rate=16000)
  with pytest.warns(DataConversionWarning, match="resampled 16000 Hz"):
    result = sources.read_wav(path, sample_rate=8000)
  assert result.dtype == np.int16
  assert len(result) == 4000
  expected = _sine(440, 8000) * 32768
  # Away from the edges (filter transients) the content matches.
  np.testing.assert_allclose(result[100:-100], expected[100:-100], atol=200)


def test_read_wav_downmixes_stereo(tmp_path, write_wav):
  rng = np.random.default_rng(0)
  stereo = rng.integers(-10000, 10000, (800, 2), dtype=np.int16)
  path = write_wav(tmp_path / "a.wav", stereo)
  with pytest.warns(DataConversionWarning, match="downmixed 2 channels"):
    result = sources.read_wav(path)
  assert result.shape == (800,) and result.dtype == np.int16
  np.testing.assert_allclose(result, stereo.mean(axis=1), atol=1)


def test_read_wav_float_converted_with_clipping(tmp_path, write_wav):
  samples = np.array([0.0, 0.5, -0.5, 1.5, -1.5], np.float32)
  path = write_wav(tmp_path / "a.wav", samples, subtype="FLOAT")
  with pytest.warns(DataConversionWarning, match="FLOAT.*clipped 2"):
    result = sources.read_wav(path)
  np.testing.assert_array_equal(result, [0, 16384, -16384, 32767, -32768])


def test_read_wav_one_warning_per_file_naming_all_fixes(tmp_path, write_wav):
  stereo = np.stack([_sine(440, 16000)] * 2, axis=1)
  path = write_wav(tmp_path / "a.wav", stereo, 16000, subtype="PCM_24")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sources.read_wav(path)
  assert len(caught) == 1
  message = str(caught[0].message)
  assert str(path) in message
  for fix in ("downmixed", "resampled", "PCM_24"):
    assert fix in message


# FSDD listing and the manual directory.


def test_list_fsdd_sorted_and_parsed(shared_fake_manual_dir):
  recordings = sources.list_fsdd(shared_fake_manual_dir)
  assert len(recordings) == 2 * 10 * 12
  names = [r.file_name for r in recordings]
  assert names == sorted(names)
  first = recordings[0]
  assert first == sources.Recording(0, "alice", 0, "0_alice_0.wav")


def test_list_fsdd_bad_name_names_file(fake_manual_dir, write_wav):
  write_wav(fake_manual_dir / sources.FSDD_RECORDINGS / "zero_alice_1.wav",
            np.ones(10, np.int16))
  with pytest.raises(DataError, match="zero_alice_1.wav"):
    sources.list_fsdd(fake_manual_dir)


def test_check_manual_dir_accepts_fake(shared_fake_manual_dir):
  sources.check_manual_dir(shared_fake_manual_dir)


def test_check_manual_dir_lists_every_missing_path(tmp_path):
  with pytest.raises(DataError) as e:
    sources.check_manual_dir(tmp_path / "nowhere")
  message = str(e.value)
  for name in (sources.MNIST_IMAGES, sources.MNIST_LABELS,
               sources.FSDD_RECORDINGS):
    assert str(tmp_path / "nowhere" / name) in message
  assert sources.MNIST_URL in message and sources.FSDD_URL in message
  assert "shared/data/README.md" in message


def test_check_manual_dir_empty_recordings(fake_manual_dir):
  for path in (fake_manual_dir / sources.FSDD_RECORDINGS).glob("*.wav"):
    path.unlink()
  (fake_manual_dir / sources.MNIST_LABELS).unlink()
  with pytest.raises(DataError) as e:
    sources.check_manual_dir(fake_manual_dir)
  message = str(e.value)
  assert "no recordings" in message
  assert str(fake_manual_dir / sources.MNIST_LABELS) in message
  assert str(fake_manual_dir / sources.MNIST_IMAGES) not in message


# Real data (../shared/data).


def test_real_mnist_counts(real_manual_dir):
  images, labels = sources.load_mnist(real_manual_dir)
  assert images.shape == (8000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (8000,) and labels.dtype == np.uint8
  assert np.bincount(labels, minlength=10).tolist() == MNIST_CLASS_COUNTS


def test_real_fsdd_listing(real_manual_dir):
  recordings = sources.list_fsdd(real_manual_dir)
  assert len(recordings) == 2500
  assert sorted({r.speaker for r in recordings}) == FSDD_SPEAKERS
  assert {r.index for r in recordings} == set(range(50))
  assert np.bincount([r.digit for r in recordings]).tolist() == [250] * 10


def test_real_wav_reads_as_is(real_manual_dir):
  path = real_manual_dir / sources.FSDD_RECORDINGS / "0_george_0.wav"
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    audio = sources.read_wav(path)
  assert audio.dtype == np.int16 and audio.shape == (2384,)
