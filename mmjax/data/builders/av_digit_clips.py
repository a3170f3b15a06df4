"""AV digit clips: Moving-MNIST-style videos with FSDD soundtracks (TFDS).

Each example is a 2 s clip of two digits in sequence. The video follows the
Moving MNIST procedure of Srivastava et al. 2015 ("Unsupervised Learning of
Video Representations using LSTMs"): a 28x28 MNIST digit bounces inside a
64x64 black frame, reflecting at the borders. The clip is cut into 4 slots
of 0.5 s; the first digit is visible only in slot i, the second only in slot
j > i. The soundtrack holds a Free Spoken Digit Dataset (FSDD) recording of
each digit inside an audio slot, silence elsewhere.

The (image, recording) pairs come from
`mmjax.data.builders.splits.make_pairs`, so no image or recording is in two
splits; each clip joins two pairs of one split.

Tasks (`task`):
  sequence: audio and video are synchronized; label = 10 * d1 + d2, the two
    digits in order (100 classes).
  sync: label 1 (synchronized) for half of the clips, else 0. Negatives are
    either "swap" (same slots, spoken digits in the other order; only when
    d1 != d2) or "shift" (audio in another slot pair, same digit order). The
    audio slots are uniform over the 6 slot pairs and the spoken order is
    exchangeable in positives and negatives alike, so neither stream alone
    tells a negative from a positive.

Typical use:

    builder = get_builder(None, None, SplitSpec(), task="sync")
    ds = builder.as_dataset(split="train")

Raw files are read from the manual directory (see `sources.LAYOUT`); nothing
is downloaded. Each spec, setting and manual-directory content is prepared
into its own config directory, e.g. `sync_official_seed0_1a2b3c4d`.
"""

import dataclasses
import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from mmjax.data.builders import av_digits
from mmjax.data.builders import sources
from mmjax.data.builders.base import LocalFilesBuilder
from mmjax.data.builders.base import PathLike
from mmjax.data.builders.base import prepare_once
from mmjax.data.builders.base import resolve_data_dir
from mmjax.data.builders.base import resolve_manual_dir
from mmjax.data.builders.registry import DATASETS
from mmjax.data.builders.splits import make_pairs
from mmjax.data.builders.splits import Pair
from mmjax.data.builders.splits import SplitSpec
from mmjax.data.errors import DataError

SAMPLE_RATE = sources.SAMPLE_RATE  # Hz of the soundtrack (FSDD's rate).
FRAME_RATE = 8  # Video frames per second.
CLIP_SECONDS = 2.0  # Clip duration in seconds.
NUM_FRAMES = int(CLIP_SECONDS * FRAME_RATE)  # 16 frames per clip.
NUM_SAMPLES = int(CLIP_SECONDS * SAMPLE_RATE)  # 16000 samples per clip.
FRAME_SIZE = 64  # Frames are FRAME_SIZE x FRAME_SIZE pixels, 1 channel.
DIGIT_SIZE = sources.IMAGE_SHAPE[0]  # MNIST digits are 28 x 28 pixels.
POSITION_LIMIT = FRAME_SIZE - DIGIT_SIZE  # Top-left corner in [0, 36] px.
NUM_SLOTS = 4  # Slots of 0.5 s per clip.
FRAMES_PER_SLOT = NUM_FRAMES // NUM_SLOTS  # 4 frames.
SAMPLES_PER_SLOT = NUM_SAMPLES // NUM_SLOTS  # 4000 samples.
SPEED_RANGE = (2.0, 5.0)  # Digit speed in pixels per frame.
SLOT_PAIRS = tuple(itertools.combinations(range(NUM_SLOTS), 2))  # 6 pairs.
TASKS = ("sequence", "sync")
NEGATIVES = ("", "swap", "shift")

_STREAM_ORDER = 0
_STREAM_CLIP = 1

_CITATION = av_digits.CITATION + """\
@inproceedings{srivastava2015unsupervised,
  author = {Nitish Srivastava and Elman Mansimov and Ruslan Salakhutdinov},
  title = {Unsupervised Learning of Video Representations using LSTMs},
  booktitle = {ICML}, year = {2015},
}
"""


class Clip(NamedTuple):
  """The random choices of one clip (no pixels, no samples).

  Attributes:
    key: unique within the split.
    video: the two pairs shown, in time order (digit a in `video_slots[0]`).
    video_slots: slot indices (i, j), i < j, of the two digits in the video.
    audio: the two pairs whose recordings are heard, in time order.
    audio_slots: slot indices (i', j'), i' < j', of the two recordings.
    synchronized: 1 if audio and video agree (slots and order), else 0.
    negative: "" (synchronized), "swap" or "shift".
    starts: per video digit, the top-left (y, x) in pixels at its slot's
      first frame, each in [0, POSITION_LIMIT].
    velocities: per video digit, (vy, vx) in pixels per frame.
    audio_fractions: per audio slot, in [0, 1): where a short recording
      starts within its slot (see `fit_to_slot`).
  """
  key: int
  video: Tuple[Pair, Pair]
  video_slots: Tuple[int, int]
  audio: Tuple[Pair, Pair]
  audio_slots: Tuple[int, int]
  synchronized: int
  negative: str
  starts: Tuple[Tuple[float, float], Tuple[float, float]]
  velocities: Tuple[Tuple[float, float], Tuple[float, float]]
  audio_fractions: Tuple[float, float]

  @property
  def sequence(self) -> int:
    """10 * d1 + d2 of the digits as shown, 0-99."""
    return 10 * self.video[0].label + self.video[1].label

  @property
  def spoken_sequence(self) -> int:
    """10 * d1 + d2 of the digits as spoken, 0-99."""
    return 10 * self.audio[0].label + self.audio[1].label


def check_settings(task: str, clips_per_pair: int,
                   swap_fraction: float) -> None:
  """Raises ValueError naming the bad argument and its allowed values."""
  if task not in TASKS:
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")
  if (isinstance(clips_per_pair, bool) or
      not isinstance(clips_per_pair, (int, np.integer)) or clips_per_pair < 1):
    raise ValueError(
        f"clips_per_pair must be an integer >= 1, got {clips_per_pair!r}")
  if (isinstance(swap_fraction, bool) or
      not isinstance(swap_fraction, (int, float, np.floating)) or
      not 0.0 <= swap_fraction <= 1.0):
    raise ValueError(
        f"swap_fraction must be a number in [0, 1], got {swap_fraction!r}")


def _split_key(split: str) -> int:
  return int.from_bytes(hashlib.sha256(split.encode()).digest()[:4], "big")


def _rng(seed: int, split: str, *keys: int) -> np.random.Generator:
  return np.random.default_rng([seed, _split_key(split), *keys])


def _draw_clip(key: int, a: Pair, b: Pair, rng: np.random.Generator,
               task: str, swap_fraction: float) -> Clip:
  video_slots = SLOT_PAIRS[rng.integers(len(SLOT_PAIRS))]
  synchronized = task == "sequence" or rng.random() < 0.5
  swap = rng.random() < swap_fraction and a.label != b.label
  others = [p for p in SLOT_PAIRS if p != video_slots]
  shifted_slots = others[rng.integers(len(others))]
  starts = rng.uniform(0.0, POSITION_LIMIT, size=(2, 2))
  angles = rng.uniform(0.0, 2 * np.pi, size=2)
  speeds = rng.uniform(*SPEED_RANGE, size=2)
  velocities = speeds[:, None] * np.stack([np.sin(angles), np.cos(angles)], 1)
  fractions = rng.random(2)
  audio, audio_slots, negative = (a, b), video_slots, ""
  if not synchronized:
    if swap:
      audio, negative = (b, a), "swap"
    else:
      audio_slots, negative = shifted_slots, "shift"
  return Clip(key, (a, b), tuple(int(s) for s in video_slots), audio,
              tuple(int(s) for s in audio_slots), int(synchronized), negative,
              tuple(map(tuple, starts.tolist())),
              tuple(map(tuple, velocities.tolist())),
              tuple(fractions.tolist()))


def draw_clips(pairs: Sequence[Pair], seed: int, split: str,
               task: str = "sequence", clips_per_pair: int = 2,
               swap_fraction: float = 0.5) -> List[Clip]:
  """The clip schedule of one split (pure; determined by its arguments).

  `clips_per_pair` rounds; each round is a seeded permutation of `pairs`
  whose consecutive pairs (a, b) form one clip (an odd last pair is
  dropped). Per clip: the video slot pair is uniform over `SLOT_PAIRS`, the
  start of each digit uniform in [0, POSITION_LIMIT]^2 px and its velocity of
  uniform direction and speed in `SPEED_RANGE` px/frame. For "sequence" every
  clip is synchronized; for "sync" a clip is synchronized with probability
  0.5, else a negative: with probability `swap_fraction`, if the digits
  differ, "swap" (same slots, recordings of b then a), otherwise "shift"
  (audio slot pair uniform over the 5 other pairs, recordings of a then b).

  Args:
    pairs: the split's pairs (see `splits.make_pairs`).
    seed: the split spec's seed.
    split: the split's name; each split has its own random streams.
    task: one of `TASKS`.
    clips_per_pair: the number of rounds, >= 1.
    swap_fraction: in [0, 1].

  Returns:
    clips_per_pair * (len(pairs) // 2) clips, keys 0, 1, ...

  Raises:
    ValueError: for a bad task, clips_per_pair or swap_fraction.
  """
  check_settings(task, clips_per_pair, swap_fraction)
  pairs = list(pairs)
  per_round = len(pairs) // 2
  clips = []
  for round_index in range(clips_per_pair):
    order = _rng(seed, split, _STREAM_ORDER, round_index).permutation(
        len(pairs))
    for k in range(per_round):
      key = round_index * per_round + k
      rng = _rng(seed, split, _STREAM_CLIP, round_index, k)
      clips.append(_draw_clip(key, pairs[order[2 * k]],
                              pairs[order[2 * k + 1]], rng, task,
                              swap_fraction))
  return clips


def bounce(start: Sequence[float], velocity: Sequence[float],
           num_frames: int = FRAMES_PER_SLOT,
           limit: float = POSITION_LIMIT) -> np.ndarray:
  """Positions of a digit moving at constant speed, reflecting at borders.

  Args:
    start: (y, x) top-left corner at frame 0, in pixels, in [0, limit].
    velocity: (vy, vx) in pixels per frame, |v| < limit.
    num_frames: the number of positions.
    limit: the largest top-left coordinate (frame size - digit size).

  Returns:
    float64 [num_frames, 2], (y, x) per frame, each in [0, limit].
  """
  position = np.asarray(start, dtype=np.float64).copy()
  velocity = np.asarray(velocity, dtype=np.float64).copy()
  positions = np.empty((num_frames, 2))
  for t in range(num_frames):
    positions[t] = position
    position = position + velocity
    low, high = position < 0, position > limit
    position[low] = -position[low]
    position[high] = 2 * limit - position[high]
    velocity[low | high] = -velocity[low | high]
  return positions


def render_video(images: Sequence[np.ndarray], slots: Sequence[int],
                 trajectories: Sequence[np.ndarray]) -> np.ndarray:
  """Draws each digit in the frames of its slot, on black.

  Args:
    images: 2 uint8 [28, 28] MNIST digits, in time order.
    slots: their slot indices in 0..NUM_SLOTS-1.
    trajectories: per digit, float [FRAMES_PER_SLOT, 2] top-left (y, x) in
      pixels (see `bounce`), rounded to whole pixels.

  Returns:
    uint8 [NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 1]; digit pixels are
    composited with np.maximum, frames outside the slots are all 0.
  """
  video = np.zeros((NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 1), np.uint8)
  for image, slot, trajectory in zip(images, slots, trajectories):
    corners = np.clip(np.rint(trajectory), 0, POSITION_LIMIT).astype(int)
    for t, (y, x) in enumerate(corners):
      frame = video[slot * FRAMES_PER_SLOT + t, y:y + DIGIT_SIZE,
                    x:x + DIGIT_SIZE, 0]
      np.maximum(frame, image, out=frame)
  return video


def fit_to_slot(recording: np.ndarray,
                fraction: float) -> Tuple[int, np.ndarray]:
  """Fits a recording into one audio slot.

  Args:
    recording: int16 [n] samples at SAMPLE_RATE Hz, n >= 1.
    fraction: in [0, 1), where a short recording starts.

  Returns:
    (offset, samples): a recording longer than SAMPLES_PER_SLOT is
    centre-cropped to it ((n - SAMPLES_PER_SLOT) // 2 samples dropped in
    front) at offset 0; a shorter one is kept whole at offset
    floor(fraction * (SAMPLES_PER_SLOT - n + 1)), in
    [0, SAMPLES_PER_SLOT - n]. Offset in samples from the slot's start.
  """
  n = len(recording)
  if n > SAMPLES_PER_SLOT:
    front = (n - SAMPLES_PER_SLOT) // 2
    return 0, recording[front:front + SAMPLES_PER_SLOT]
  return int(fraction * (SAMPLES_PER_SLOT - n + 1)), recording


def mix_soundtrack(recordings: Sequence[np.ndarray], slots: Sequence[int],
                   fractions: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
  """Places each recording inside its audio slot, silence elsewhere.

  Args:
    recordings: 2 int16 [n] recordings at SAMPLE_RATE Hz, in time order.
    slots: their distinct slot indices in 0..NUM_SLOTS-1.
    fractions: per recording, see `fit_to_slot`.

  Returns:
    (soundtrack, starts): int16 [NUM_SAMPLES]; int64 [2], the sample index in
    the soundtrack where each (cropped) recording starts.
  """
  soundtrack = np.zeros(NUM_SAMPLES, np.int16)
  starts = np.zeros(len(recordings), np.int64)
  for k, (recording, slot, fraction) in enumerate(
      zip(recordings, slots, fractions)):
    offset, samples = fit_to_slot(np.asarray(recording, np.int16), fraction)
    starts[k] = slot * SAMPLES_PER_SLOT + offset
    soundtrack[starts[k]:starts[k] + len(samples)] = samples
  return soundtrack, starts


def _settings_fingerprint(task: str, clips_per_pair: int, swap_fraction: float,
                          manual_fingerprint: str) -> str:
  payload = json.dumps({"task": task, "clips_per_pair": int(clips_per_pair),
                        "swap_fraction": float(swap_fraction),
                        "manual": manual_fingerprint}, sort_keys=True)
  return hashlib.sha256(payload.encode()).hexdigest()[:16]


def config_name(spec: SplitSpec, manual_fingerprint: str,
                task: str = "sequence", clips_per_pair: int = 2,
                swap_fraction: float = 0.5) -> str:
  """TFDS config name `{task}_{av_digits.config_name(...)}`.

  e.g. "sync_official_seed0_1a2b3c4d"; the hash covers the spec, the
  settings and the manual directory's fingerprint.
  """
  return f"{task}_" + av_digits.config_name(
      spec, _settings_fingerprint(task, clips_per_pair, swap_fraction,
                                  manual_fingerprint))


@dataclasses.dataclass(eq=False)
class AvDigitClipsConfig(av_digits.AvDigitsConfig):
  """An `AvDigitsConfig` (spec + manual fingerprint) plus the clip settings.

  Build with `AvDigitClipsConfig.from_spec`, which checks the settings and
  sets `name` (see `config_name`).
  """
  task: str = "sequence"
  clips_per_pair: int = 2
  swap_fraction: float = 0.5

  @classmethod
  def from_spec(cls, spec: SplitSpec, manual_fingerprint: str,
                task: str = "sequence", clips_per_pair: int = 2,
                swap_fraction: float = 0.5) -> "AvDigitClipsConfig":
    """The config for `spec`, a manual directory and the settings.

    Raises:
      ValueError: for a bad task, clips_per_pair or swap_fraction.
    """
    check_settings(task, clips_per_pair, swap_fraction)
    settings = dict(task=task, clips_per_pair=int(clips_per_pair),
                    swap_fraction=float(swap_fraction))
    return cls(
        name=config_name(spec, manual_fingerprint, **settings),
        description=(f"{spec}, {settings}, manual dir fingerprint "
                     f"{manual_fingerprint}"),
        spec=spec, manual_fingerprint=manual_fingerprint, **settings)


class AvDigitClips(LocalFilesBuilder):
  """Two-digit Moving-MNIST clips with FSDD soundtracks.

  Features per example:
    video: uint8 [16, 64, 64, 1], 8 frames/s (frames stored as PNG).
    audio: int16 [16000], mono at 8000 Hz.
    label: int64, 10 * d1 + d2 (task "sequence", 100 classes) or
      `synchronized` (task "sync", 2 classes).
    sequence: int64, 10 * d1 + d2 as shown; spoken_sequence: as spoken.
    synchronized: int64, 1 if audio and video agree, else 0.
    negative: string, "", "swap" or "shift" (see `draw_clips`).
    video_slots: int64 [2], the slot (0-3) of each shown digit, increasing.
    audio_slots: int64 [2], the slot of each spoken digit, increasing.
    image_ids: int64 [2], MNIST indices of the digits shown in video_slots.
    recordings: string [2], FSDD files heard in audio_slots.
    speakers: string [2], their speakers.
    audio_starts: int64 [2], sample index where each recording starts.
  Splits: train, validation, test (see `mmjax.data.builders.splits`).
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = av_digits.AvDigits.MANUAL_DOWNLOAD_INSTRUCTIONS

  @property
  def _config(self) -> AvDigitClipsConfig:
    return self.builder_config or AvDigitClipsConfig.from_spec(SplitSpec(), "")

  def _info(self) -> tfds.core.DatasetInfo:
    num_classes = 100 if self._config.task == "sequence" else 2
    pair_int = tfds.features.Tensor(shape=(2,), dtype=np.int64)
    pair_str = tfds.features.Tensor(shape=(2,), dtype=np.str_)
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "Two MNIST digits bouncing in 64x64 frames (Moving MNIST) in two "
            "of four 0.5 s slots, with FSDD recordings of them."),
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Video(
                shape=(NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 1),
                dtype=np.uint8),
            "audio": tfds.features.Audio(shape=(NUM_SAMPLES,), dtype=np.int16,
                                         sample_rate=SAMPLE_RATE),
            "label": tfds.features.ClassLabel(num_classes=num_classes),
            "sequence": tfds.features.Scalar(dtype=np.int64),
            "spoken_sequence": tfds.features.Scalar(dtype=np.int64),
            "synchronized": tfds.features.Scalar(dtype=np.int64),
            "negative": tfds.features.Text(),
            "video_slots": pair_int,
            "audio_slots": pair_int,
            "image_ids": pair_int,
            "recordings": pair_str,
            "speakers": pair_str,
            "audio_starts": pair_int,
        }),
        supervised_keys=None,
        homepage=sources.FSDD_URL,
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = Path(dl_manager.manual_dir)
    expected = self._config.manual_fingerprint
    actual = av_digits.fingerprint(manual_dir)
    if expected and expected != actual:
      raise DataError(
          f"{manual_dir}: fingerprint {actual} differs from the config's "
          f"{expected}; build the config from this directory with "
          "AvDigitClipsConfig.from_spec(spec, fingerprint(manual_dir), ...).")
    images, labels = sources.load_mnist(manual_dir)
    pairs = make_pairs(sources.list_fsdd(manual_dir), labels,
                       self._config.spec)
    recordings_dir = manual_dir / sources.FSDD_RECORDINGS
    c = self._config
    return {
        name: self._generate_examples(
            recordings_dir, images,
            draw_clips(split_pairs, c.spec.seed, name, c.task,
                       c.clips_per_pair, c.swap_fraction))
        for name, split_pairs in pairs.items()
    }

  def _generate_examples(self, recordings_dir: Path, images: np.ndarray,
                         clips: List[Clip]) -> Iterator[Tuple[int, dict]]:
    audio_cache: Dict[str, np.ndarray] = {}

    def read(name: str) -> np.ndarray:
      if name not in audio_cache:
        audio_cache[name] = sources.read_wav(recordings_dir / name)
      return audio_cache[name]

    for clip in clips:
      video = render_video(
          [images[p.image_index] for p in clip.video], clip.video_slots,
          [bounce(s, v) for s, v in zip(clip.starts, clip.velocities)])
      audio, starts = mix_soundtrack(
          [read(p.recording) for p in clip.audio], clip.audio_slots,
          clip.audio_fractions)
      yield clip.key, {
          "video": video,
          "audio": audio,
          "label": (clip.sequence if self._config.task == "sequence"
                    else clip.synchronized),
          "sequence": clip.sequence,
          "spoken_sequence": clip.spoken_sequence,
          "synchronized": clip.synchronized,
          "negative": clip.negative,
          "video_slots": np.asarray(clip.video_slots, np.int64),
          "audio_slots": np.asarray(clip.audio_slots, np.int64),
          "image_ids": np.asarray([p.image_index for p in clip.video],
                                  np.int64),
          "recordings": np.asarray([p.recording for p in clip.audio],
                                   dtype=object),
          "speakers": np.asarray([p.speaker for p in clip.audio], dtype=object),
          "audio_starts": starts,
      }


def get_builder(manual_dir: Optional[PathLike] = None,
                data_dir: Optional[PathLike] = None,
                spec: SplitSpec = SplitSpec(), task: str = "sequence",
                clips_per_pair: int = 2,
                swap_fraction: float = 0.5) -> AvDigitClips:
  """Returns the AvDigitClips builder for these settings, prepared once.

  Preparation reads the manual directory (never writes there) and writes
  TFRecords under `data_dir/av_digit_clips/<config name>/1.0.0/`; a prepared
  config is reused, not rebuilt.

  Args:
    manual_dir: the raw files (see `sources.LAYOUT`); empty or None ->
      `base.resolve_manual_dir`.
    data_dir: TFDS data directory; empty or None ->
      `base.resolve_data_dir`.
    spec: the split specification (official or held-out speakers).
    task: "sequence" or "sync" (see the module docstring).
    clips_per_pair: rounds over each split's pairs, >= 1; each round yields
      len(pairs) // 2 clips.
    swap_fraction: in [0, 1], the share of "sync" negatives that swap the
      spoken digits (when they differ) instead of shifting the audio slots.

  Returns:
    A prepared builder; read it with `builder.as_dataset(split=...)`.

  Raises:
    DataError: listing the missing files of the manual directory, or for
      malformed input files (naming them).
    ValueError: naming a bad task, clips_per_pair or swap_fraction.
  """
  check_settings(task, clips_per_pair, swap_fraction)
  manual_dir = resolve_manual_dir(manual_dir)
  data_dir = resolve_data_dir(data_dir)
  config = AvDigitClipsConfig.from_spec(
      spec, av_digits.fingerprint(manual_dir), task, clips_per_pair,
      swap_fraction)
  builder = AvDigitClips(data_dir=os.fspath(data_dir), config=config)
  return prepare_once(builder, manual_dir)


@DATASETS.register("av_digit_clips")
def from_config(data_config: ml_collections.ConfigDict) -> AvDigitClips:
  """`get_builder` for `config.data`: two-digit Moving-MNIST clips (video) with
  FSDD soundtracks (audio), 2 s, 16 frames of 64x64, 16000 samples.

  Keys of `data_config` (all but `name` optional):
    manual_dir, data_dir: as for `av_digits` ("" or None -> MMJAX_MANUAL_DIR
      / MMJAX_DATA_DIR, else ../shared/data / ~/tensorflow_datasets).
    pairing_seed, test_speakers, validation_indices, test_indices,
      image_fractions, validation_speakers: the `SplitSpec`, as for
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
  default = SplitSpec()
  spec = SplitSpec(
      seed=data_config.get("pairing_seed", default.seed),
      test_speakers=tuple(data_config.get("test_speakers", ())),
      validation_indices=tuple(data_config.get("validation_indices",
                                               default.validation_indices)),
      test_indices=tuple(data_config.get("test_indices",
                                         default.test_indices)),
      image_fractions=tuple(data_config.get("image_fractions",
                                            default.image_fractions)),
      validation_speakers=tuple(data_config.get("validation_speakers", ())))
  return get_builder(
      data_config.get("manual_dir"), data_config.get("data_dir"), spec,
      task=data_config.get("task", "sequence"),
      clips_per_pair=data_config.get("clips_per_pair", 2),
      swap_fraction=data_config.get("swap_fraction", 0.5))
