"""Tests of the manifest's videos and soundtracks
(mmjax/data/builders/manifest/video.py and media.py, and the prepared
dataset): 16 x 16 videos written with PyAV (lossless FFV1 / PNG codecs,
lossy MPEG-4) and frame folders, and videos and audio files with
soundtracks written with PyAV (lossless PCM / FLAC tones, lossy AAC; some
starting before or after the video); the stored features are checked
against those sources."""

from fractions import Fraction
import functools
import math
import os
from pathlib import Path

import av
import jax
import librosa
import numpy as np
import PIL.Image
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from configs import manifest as manifest_config
from mmjax.data import pipeline
from mmjax.data.builders import registry as datasets
from mmjax.data.builders.manifest import builder as manifest
from mmjax.data.builders.manifest import fingerprint
from mmjax.data.builders.manifest import media
from mmjax.data.builders.manifest import table
from mmjax.data.builders.manifest import video as manifest_video
from mmjax.data.errors import DataError
from mmjax.models.multimodal import build_classifier
from tests.data.builders.manifest.helpers import assert_names
from tests.data.builders.manifest.helpers import label_manifest
from tests.data.builders.manifest.helpers import read_all
from tests.data.builders.manifest.helpers import write_csv
from tests.data.builders.manifest.helpers import LABELS
from tests.data.builders.manifest.helpers import RATE


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
  return write_csv(root / name, ["video", "label"],
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
    got = manifest_video.resample_indices([float(t) for t in times],
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
  parsed = table.read_manifest(_video_manifest(root, [name]))
  video = media.read_video(parsed, parsed.rows[0], frame_rate, 16,
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
  parsed = table.read_manifest(_video_manifest(root, ["lossy.mp4"]))
  video = media.read_video(parsed, parsed.rows[0], 8.0, 16)
  expected = flat[_direct_indices(len(flat), Fraction(fps), 8)]
  assert video.shape == expected.shape == (12, 16, 16, 3)
  np.testing.assert_allclose(video, expected, atol=LOSSY_TOLERANCE)
  small = media.read_video(parsed, parsed.rows[0], 8.0, 5)
  assert small.shape == (12, 5, 5, 3)  # Flat colours stay flat.
  np.testing.assert_allclose(small, expected[:, :5, :5], atol=LOSSY_TOLERANCE)


def test_frame_folder(clips):
  """Images in file-name order (the BMP of another size resized, the text
  file ignored), one stored frame each, or at `folder_rate`."""
  root, sources = clips
  frames, _ = sources["frames"]
  parsed = table.read_manifest(_video_manifest(root, ["frames"]))
  row = parsed.rows[0]
  np.testing.assert_array_equal(
      media.read_video(parsed, row, 8.0, 16), frames)
  np.testing.assert_array_equal(
      media.read_video(parsed, row, 8.0, 16, folder_rate=4.0),
      frames[_direct_indices(3, Fraction(4), 8)])
  np.testing.assert_array_equal(
      media.read_video(parsed, row, 8.0, 16, max_seconds=0.25),
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
  parsed = table.read_manifest(path)
  reasons = ["Invalid data", "without PNG, JPEG or BMP", "cannot identify",
             "no video stream", "no such file"]
  for row, name, reason in zip(parsed.rows, names, reasons):
    with pytest.raises(DataError) as e:
      media.read_video(parsed, row, 8.0, 16)
    file = tmp_path / name / "1.png" if name == "broken" else tmp_path / name
    assert_names(e.value, path, f"line {row.line} (row {row.number})",
                 "column video", file, reason)
  with pytest.raises(DataError) as e:  # In preparation, too.
    manifest.get_builder(_video_manifest(tmp_path, names[:1], "one.csv"),
                         tmp_path / "tfds")
  assert_names(e.value, "line 2 (row 1)", tmp_path / "garbage.mp4",
               "cannot read")
  with pytest.raises(DataError) as e:  # The fingerprint finds it first.
    manifest.get_builder(_video_manifest(tmp_path, names[4:], "gone.csv"),
                         tmp_path / "tfds")
  assert_names(e.value, "line 2 (row 1)", tmp_path / "gone.mp4",
               "no such file")


# Rows of the prepared video manifest: (video, audio, label, split).
VIDEO_ROWS = [("ffv1.mkv", "snd.wav", "cat", "train"),
              ("png.avi", "snd.wav", "dog", "train"),
              ("frames", "snd.wav", "cat", "validation"),
              ("lossy.mp4", "snd.wav", "dog", "test")]


@pytest.fixture(scope="module")
def video_manifest(clips):
  root, _ = clips
  return write_csv(root / "av.csv", ["video", "audio", "label", "split"],
                   VIDEO_ROWS)


def test_video_manifest_is_prepared(clips, video_manifest, tmp_path):
  _, sources = clips
  builder = manifest.get_builder(video_manifest, tmp_path, video_size=16,
                                 sample_rate=RATE)
  assert builder.builder_config.name.startswith(
      "audio-video_sr8000_v16_fr8_10s_seed0_")
  assert builder.info.features["video"].shape == (None, 16, 16, 3)
  examples = read_all(builder)
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
      table.read_manifest(video_manifest), video_size=16,
      video_soundtrack=False).name == builder.builder_config.name
  other = manifest.ManifestConfig.make(
      table.read_manifest(video_manifest), frame_rate=7.5,
      max_video_seconds=2)
  assert "_v64_fr7p5_2s_" in other.name
  assert other.name.split("_")[-1] != builder.builder_config.name.split(
      "_")[-1]


def test_video_settings_leave_other_manifests_alone(tmp_path):
  """Without a video column the video settings change no config name (a
  manifest prepared before video support keeps its directory)."""
  parsed = table.read_manifest(label_manifest(tmp_path))
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
  parsed = table.read_manifest(_video_manifest(tmp_path, ["frames"]))
  before = fingerprint.fingerprint(parsed)
  PIL.Image.new("RGB", (4, 4), (9, 9, 9)).save(folder / "1.png")
  stat = (folder / "1.png").stat()
  os.utime(folder / "1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  assert fingerprint.fingerprint(parsed) != before


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
  expected["stereo16k.mkv"] = media.to_int16(librosa.resample(
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
  parsed = table.read_manifest(write_csv(
      root / "media.csv", ["audio", "label"], [(n, "cat") for n in names]))
  for row, name in zip(parsed.rows, names):
    audio = media.read_audio(parsed, row, RATE)
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
  parsed = table.read_manifest(_video_manifest(root, names, "st.csv"))
  for row, name in zip(parsed.rows, names):
    audio = media.read_soundtrack(parsed, row, RATE)
    assert audio.dtype == np.int16
    if name == "tone.mp4":
      assert _rms(audio, expected[name]) < AAC_RMS_TOLERANCE
    elif name == "stereo16k.mkv":
      np.testing.assert_allclose(audio, expected[name], atol=1)
    else:
      np.testing.assert_array_equal(audio, expected[name])
  late = media.read_soundtrack(parsed, parsed.rows[2], RATE,
                               max_seconds=0.4)
  np.testing.assert_array_equal(late, expected["late.mkv"][:3200])
  stereo = table.read_manifest(write_csv(
      root / "stereo.csv", ["audio", "label"], [("stereo16k.mkv", "cat")]))
  np.testing.assert_array_equal(
      media.read_soundtrack(parsed, parsed.rows[4], RATE),
      media.read_audio(stereo, stereo.rows[0], RATE))


def test_soundtracks_decide_the_audio_modality(soundtracks, clips):
  """Audio when every video has a soundtrack (and video_soundtrack), none
  when none has (a frame folder has none), an error when some have."""
  root, _ = soundtracks

  def modalities(names, soundtrack=True, name="m.csv"):
    parsed = table.read_manifest(_video_manifest(root, names, name))
    return media.modalities_of(parsed, soundtrack)
  assert modalities(["late.mkv", "tone.mp4"]) == ("audio", "video")
  assert modalities(["late.mkv", "tone.mp4"], False) == ("video",)
  assert modalities(["silent.mkv", "frames", "ffv1.mkv"]) == ("video",)
  assert media.modalities_of(table.read_manifest(
      write_csv(root / "both.csv", ["video", "audio", "label"],
                [("silent.mkv", "snd.wav", "cat")]))) == ("audio", "video")
  for names, without, kind in (
      (["late.mkv", "tone.mp4", "silent.mkv", "frames"], "silent.mkv",
       "no audio stream"),
      (["frames", "late.mkv"], "frames", "a frame folder")):
    path = _video_manifest(root, names, "mixed.csv")
    with pytest.raises(DataError) as e:
      media.modalities_of(table.read_manifest(path))
    row = names.index(without) + 1
    assert_names(e.value, path, f"line {row + 1} (row {row})",
                 "column video", root / without, kind,
                 "line 2 (row 1)" if row > 1 else "line 3 (row 2)",
                 "data.video_soundtrack=False")
    with pytest.raises(DataError):  # As the builder's config.
      manifest.ManifestConfig.make(table.read_manifest(path))
    assert manifest.ManifestConfig.make(table.read_manifest(path),
                                        video_soundtrack=False).modalities == (
                                            "video",)


def test_soundtrack_errors_name_the_row_and_file(soundtracks):
  root, _ = soundtracks
  (root / "noise.mp4").write_bytes(b"\x00\x01 not a video" * 40)
  names = ["silent.mkv", "frames", "noise.mp4", "absent.mkv"]
  path = _video_manifest(root, names, "bad_st.csv")
  parsed = table.read_manifest(path)
  reasons = ["no audio stream", "frame folder", "Invalid data",
             "no such file"]
  for row, name, reason in zip(parsed.rows, names, reasons):
    with pytest.raises(DataError) as e:
      media.read_soundtrack(parsed, row, RATE)
    assert_names(e.value, path, f"line {row.line} (row {row.number})",
                 "column video", root / name, reason)
  files = {"silent.mkv": "PyAV: no audio stream",
           "noise.mp4": "PyAV: Invalid data"}
  audio_path = write_csv(root / "bad_audio.csv", ["audio", "label"],
                         [(name, "cat") for name in files])
  parsed = table.read_manifest(audio_path)
  for row, (name, reason) in zip(parsed.rows, files.items()):
    with pytest.raises(DataError) as e:
      media.read_audio(parsed, row, RATE)
    assert_names(e.value, audio_path, f"line {row.line} (row {row.number})",
                 "column audio", root / name, "cannot read",
                 "soundfile: Format not recognised", reason)
  with pytest.raises(DataError) as e:  # Probing, too.
    media.modalities_of(table.read_manifest(
        _video_manifest(root, ["late.mkv", "noise.mp4"], "probe.csv")))
  assert_names(e.value, "line 3 (row 2)", root / "noise.mp4", "cannot read")


# Rows of the prepared soundtrack manifest: (video, label, split).
SOUNDTRACK_ROWS = [("ffv1_sound.mkv", "cat", "train"),
                   ("png_sound.avi", "dog", "train"),
                   ("late.mkv", "cat", "validation"),
                   ("tone.mp4", "dog", "test")]


@pytest.fixture(scope="module")
def soundtrack_manifest(soundtracks):
  root, _ = soundtracks
  return write_csv(root / "soundtracks.csv", ["video", "label", "split"],
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
  examples = read_all(builder)
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
  parsed = table.read_manifest(soundtrack_manifest)
  off = manifest.ManifestConfig.make(parsed, video_size=16,
                                     video_soundtrack=False)
  assert off.modalities == ("video",)
  assert off.name.startswith("video_v16_fr8_10s_seed0_")
  silent = table.read_manifest(_video_manifest(
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
