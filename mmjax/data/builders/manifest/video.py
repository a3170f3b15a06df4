"""Decoding for the manifest's `media`: video files and their soundtracks
(PyAV), folders of frames (Pillow), and the audio files that soundfile
cannot read (PyAV).

These functions take a file's path and raise `Unreadable` with the reason;
`media` turns it into a `DataError` naming the manifest, the line, row and
column and the file. Imports of PyAV and Pillow are deferred to the calls,
as in `media`.
"""

import contextlib
import math
import os
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

FRAME_FORMATS = ("PNG", "JPEG", "BMP")  # Of a folder of frames (Pillow's).
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# Video timestamps converted from a rational time base to float seconds may
# be a bit off; a frame counts as shown at time t when it starts by t + this.
TIME_TOLERANCE = 1e-6  # seconds


class Unreadable(Exception):
  """A file that cannot be decoded.

  Attributes:
    reason: why, without the file's path, e.g. "no audio stream".
    path: the file at fault when it is not the one the manifest names (a
      frame of a frame folder), else None.
  """

  def __init__(self, reason: str, path: Optional[Path] = None):
    super().__init__(reason)
    self.reason = reason
    self.path = path


@contextlib.contextmanager
def _pyav_errors(prefix: str = "") -> Iterator[None]:
  """Raises PyAV's (FFmpeg's) errors as `Unreadable`, `prefix` + reason."""
  import av  # pylint: disable=g-import-not-at-top
  try:
    yield
  except (av.FFmpegError, OSError) as e:
    reason = getattr(e, "strerror", None) or str(e)  # Without the path.
    raise Unreadable(prefix + reason) from e


# Video frames.


def resample_indices(times: Sequence[float], duration: float,
                     frame_rate: float, max_seconds: float) -> np.ndarray:
  """The source frame shown at each frame of a constant frame rate.

  Output frame k is at k / frame_rate seconds (k = 0, 1, ...) and shows the
  last source frame whose time is <= that (up to `TIME_TOLERANCE`; the
  first frame if none is). There are ceil(min(duration, max_seconds) *
  frame_rate) output frames (up to the tolerance), at least one.

  Args:
    times: float [n >= 1], seconds from the clip's start to each source
      frame's presentation, non-decreasing.
    duration: seconds from the clip's start to the end of its last frame.
    frame_rate: output frames per second (Hz), > 0.
    max_seconds: the output covers at most this many seconds, > 0.

  Returns:
    int64 [num_output_frames], indices into `times`.
  """
  seconds = min(duration, max_seconds) - TIME_TOLERANCE
  count = max(1, math.ceil(seconds * frame_rate))
  shown_at = np.arange(count) / frame_rate + TIME_TOLERANCE
  indices = np.searchsorted(np.asarray(times, np.float64), shown_at,
                            side="right") - 1
  return np.maximum(indices, 0).astype(np.int64)


def _square_rgb(image, size: int) -> np.ndarray:
  """A Pillow image as uint8 [size, size, 3] RGB (bicubic)."""
  import PIL.Image  # pylint: disable=g-import-not-at-top
  square = image.convert("RGB").resize((size, size),
                                       PIL.Image.Resampling.BICUBIC)
  return np.asarray(square, dtype=np.uint8)


def frame_files(folder: Path) -> List[Path]:
  """The frames of a frame folder: its files with a `FRAME_SUFFIXES`
  suffix (any case), not hidden, sorted by name."""
  return sorted(
      (f for f in folder.iterdir() if f.suffix.lower() in FRAME_SUFFIXES
       and not f.name.startswith(".") and f.is_file()),
      key=lambda f: f.name)


def _read_frame(path: Path, size: int) -> np.ndarray:
  """One image of a frame folder as uint8 [size, size, 3].

  Raises:
    Unreadable: with `path`, for a file that is not a readable
      `FRAME_FORMATS` image.
  """
  import PIL.Image  # pylint: disable=g-import-not-at-top
  try:
    image = PIL.Image.open(path)
  except (OSError, PIL.UnidentifiedImageError) as e:
    raise Unreadable(str(e), path) from e
  with image:
    if image.format not in FRAME_FORMATS:
      raise Unreadable(f"a {image.format} image", path)
    try:
      return _square_rgb(image, size)  # Decodes: a corrupt file fails here.
    except (OSError, ValueError) as e:
      raise Unreadable(str(e), path) from e


def read_frame_folder(folder: Path, frame_rate: float, size: int,
                      max_seconds: float, folder_rate: float) -> np.ndarray:
  """A frame folder's images (`frame_files`), image i shown at i /
  `folder_rate` s, resampled with `resample_indices`.

  Returns:
    uint8 [T, size, size, 3] RGB at `frame_rate` Hz; only the images shown
    are decoded.

  Raises:
    Unreadable: for a folder without frame files, or (with the frame's
      path) a frame that is not a readable `FRAME_FORMATS` image.
  """
  files = frame_files(folder)
  if not files:
    raise Unreadable("a folder without PNG, JPEG or BMP files")
  indices = resample_indices(np.arange(len(files)) / folder_rate,
                             len(files) / folder_rate, frame_rate, max_seconds)
  frames = {i: _read_frame(files[i], size) for i in np.unique(indices)}
  return np.stack([frames[i] for i in indices])


def _pts_seconds(frame) -> Optional[float]:
  """A decoded PyAV frame's presentation time (s), None without one."""
  if frame.pts is None or not frame.time_base:
    return None
  return float(frame.pts * frame.time_base)


def _frame_timing(frame, index: int, rate) -> Optional[Tuple[float, float]]:
  """(start, duration) in seconds of a decoded PyAV frame, the `index`-th
  of its stream at `rate` (a Fraction, or None), from its timestamps, else
  from the stream's rate; None without either."""
  period = 1.0 / float(rate) if rate else None
  start = _pts_seconds(frame)
  if start is None:
    if period is None:
      return None
    start = index * period
  if frame.duration and frame.time_base:
    return start, float(frame.duration * frame.time_base)
  return start, period or 0.0


def _decode_video_frames(path: Path, size: int, max_seconds: float
                         ) -> Tuple[List[np.ndarray], List[float], float]:
  """(frames uint8 [size, size, 3], their times in s from the first
  frame, the end of the last one in s) of the file's first video stream,
  decoded up to `max_seconds`."""
  import av  # pylint: disable=g-import-not-at-top
  import PIL.Image  # pylint: disable=g-import-not-at-top
  frames, times, end = [], [], 0.0
  with _pyav_errors(), av.open(os.fspath(path)) as container:
    if not container.streams.video:
      raise Unreadable("no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    first = None
    for frame in container.decode(stream):
      timing = _frame_timing(frame, len(frames), rate)
      if timing is None:
        raise Unreadable("frames without timestamps or frame rate")
      first = timing[0] if first is None else first
      start = timing[0] - first
      if start >= max_seconds:
        break
      times.append(start)
      end = max(end, start + timing[1])
      frames.append(_square_rgb(PIL.Image.fromarray(
          frame.to_ndarray(format="rgb24")), size))
  if not frames:
    raise Unreadable("no frames")
  return frames, times, end


def read_video_file(path: Path, frame_rate: float, size: int,
                    max_seconds: float) -> np.ndarray:
  """A video file's first video stream, resampled with `resample_indices`
  (frame times from its timestamps, counted from its first decoded frame).

  Returns:
    uint8 [T, size, size, 3] RGB at `frame_rate` Hz, 1 <= T <=
    ceil(max_seconds * frame_rate); frames past `max_seconds` are not
    decoded.

  Raises:
    Unreadable: for a file PyAV cannot open or decode, or without a video
      stream or frames.
  """
  frames, times, end = _decode_video_frames(path, size, max_seconds)
  order = np.argsort(times, kind="stable")  # Presentation order.
  indices = resample_indices(np.asarray(times)[order], end, frame_rate,
                             max_seconds)
  return np.stack([frames[order[i]] for i in indices])


# Audio streams.


def has_audio_stream(path: Path) -> bool:
  """Whether the media file `path` has an audio stream; False for a folder
  (of frames).

  Opens the file as any read does (FFmpeg reads its header and probes its
  streams, which may decode a few packets) and decodes nothing more.

  Raises:
    Unreadable: for a file PyAV cannot open.
  """
  import av  # pylint: disable=g-import-not-at-top
  if path.is_dir():
    return False
  with _pyav_errors(), av.open(os.fspath(path)) as container:
    return bool(container.streams.audio)


def _decode_audio(container, video, max_seconds: float
                  ) -> Tuple[np.ndarray, int, float]:
  """Decodes the first audio stream of an open PyAV container.

  With `video` (a video stream of it), decoding stops once the audio covers
  `max_seconds` from the video's first decoded frame, and the video is
  decoded only up to that frame.

  Returns:
    (float64 [samples] mono (the mean of the channels, in [-1, 1]), the
    stream's rate in Hz (0 without samples), the time of the first decoded
    audio sample minus that of the first video frame in seconds (0.0
    without `video`, or without an audio timestamp)).

  Raises:
    Unreadable: for a video stream without frames, or audio frames whose
      format, layout or rate changes within the stream.
  """
  import av  # pylint: disable=g-import-not-at-top
  audio = container.streams.audio[0]
  # Only converts the sample format (any -> planar float64, exactly for
  # integer samples); the rate is left to librosa, as for soundfile's files.
  resampler = av.AudioResampler(format="dblp")
  chunks, count, rate = [], 0, 0
  audio_start, video_start = None, (0.0 if video is None else None)
  streams = [audio] if video is None else [audio, video]
  for packet in container.demux(streams):
    if packet.stream.index != audio.index:
      if video_start is None:  # Later video packets are not decoded.
        frames = packet.decode()
        if frames:
          start = _pts_seconds(frames[0])
          video_start = 0.0 if start is None else start
      continue
    for frame in packet.decode():
      if not rate:
        rate, audio_start = frame.sample_rate, _pts_seconds(frame)
      try:
        converted = resampler.resample(frame)
      except ValueError as e:  # The stream changed format mid-way.
        raise Unreadable(str(e)) from e
      chunks += [c.to_ndarray() for c in converted]
      count += sum(c.samples for c in converted)
    if video_start is not None and rate:
      start = video_start if audio_start is None else audio_start
      if start + count / rate >= video_start + max_seconds:
        break
  if video_start is None:
    raise Unreadable("no video frames")
  chunks += [c.to_ndarray() for c in resampler.resample(None)]
  mono = (np.concatenate(chunks, axis=1).mean(axis=0) if chunks
          else np.zeros(0))
  offset = (audio_start - video_start
            if video is not None and audio_start is not None else 0.0)
  return mono, rate, offset


def read_audio_stream(path: Path) -> Tuple[np.ndarray, int]:
  """The first audio stream of a media file (e.g. MP3, M4A, MP4, WebM,
  MKV), decoded with PyAV from its first sample.

  Returns:
    (float64 [samples] mono (the mean of the channels) in [-1, 1], its
    rate in Hz); no samples when the stream has none.

  Raises:
    Unreadable: for a file PyAV cannot open or decode, or without an audio
      stream.
  """
  import av  # pylint: disable=g-import-not-at-top
  with _pyav_errors(), av.open(os.fspath(path)) as container:
    if not container.streams.audio:
      raise Unreadable("no audio stream")
    mono, rate, _ = _decode_audio(container, None, math.inf)
  return mono, rate


def read_soundtrack(path: Path, max_seconds: float) -> Tuple[np.ndarray, int]:
  """A video file's soundtrack (its first audio stream), aligned with its
  first video stream as `read_video_file` reads it.

  Sample 0 is at the first decoded video frame: by the timestamps of the
  first decoded audio and video frames, the audio is zero-padded at the
  start when it begins later, cut when it begins earlier (to the nearest
  sample; not moved when the audio frames have no timestamp). The samples
  follow each other as decoded (gaps in the audio's timestamps are not
  filled).

  Returns:
    (float64 [samples] mono (the mean of the channels) in [-1, 1], at most
    round(max_seconds * rate) samples; the stream's rate in Hz).

  Raises:
    Unreadable: ("soundtrack: " + the reason) for a file PyAV cannot open
      or decode, without a video or audio stream, without video frames or
      without audio samples from the first video frame on.
  """
  import av  # pylint: disable=g-import-not-at-top
  with _pyav_errors("soundtrack: "), av.open(os.fspath(path)) as container:
    for kind in ("video", "audio"):
      if not getattr(container.streams, kind):
        raise Unreadable(f"soundtrack: no {kind} stream")
    try:
      mono, rate, offset = _decode_audio(container, container.streams.video[0],
                                         max_seconds)
    except Unreadable as e:
      raise Unreadable(f"soundtrack: {e.reason}") from e
  shift = int(round(offset * rate))
  if shift > 0:
    mono = np.concatenate([np.zeros(shift), mono])
  mono = mono[max(0, -shift):][:int(round(max_seconds * rate))]
  if not mono.size:
    raise Unreadable("soundtrack: no audio samples from the first video "
                     "frame on")
  return mono, rate
