"""Writes a digits manifest with incomplete, partial text from ../shared/data.

  python experiments/manifest/make_manifest.py --out runs/manifest_digits

Rows: every FSDD recording (2,500: 5 speakers x 10 digits x 50), each
paired with a distinct MNIST image of the same digit (the first 8,000 test
images; a seeded draw, never shared between splits), saved as a 28 x 28 PNG
under `<out>/images/`; the audio cell is the recording's absolute path
(read only). Split column: FSDD's official one, recordings 0-4 of each
speaker and digit test, 5-9 validation (carved out of the training part),
10-49 train: 2,000 / 250 / 250 rows.

Text: one partial fact about the digit, drawn per row (seeded) among its
parity ("an even digit" / "an odd digit"), its size ("a digit above four" /
"a digit of four or below") and primality ("a prime digit" / "a digit that
is not prime"): each narrows ten classes down to four to six, none names
the digit. The cell is empty (a missing text) in a third of the rows of
every split (a seeded draw of exactly round(n / 3) rows per split).

Noisy setting (`--image_noise`, `--audio_snr_db`): the images get seeded
Gaussian noise of that standard deviation (pixel values 0-255, clipped),
and the recordings seeded white noise at that signal-to-noise ratio (dB,
over the whole recording), written as 16-bit WAV files under `<out>/audio/`
(the audio cells then name those): image and audio alone no longer reach
the ceiling, so what the text adds can show.

Args: --out (folder written; created), --seed (default 0), --image_noise
(default 0: none), --audio_snr_db (default none).
"""

import argparse
import csv
import gzip
import pathlib

import numpy as np
import PIL.Image
import soundfile as sf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data"
MISSING_TEXT_FRACTION = 1 / 3
FACTS = (
    lambda d: "an even digit" if d % 2 == 0 else "an odd digit",
    lambda d: "a digit above four" if d > 4 else "a digit of four or below",
    lambda d: ("a prime digit" if d in (2, 3, 5, 7)
               else "a digit that is not prime"),
)


def _idx(name: str, offset: int) -> np.ndarray:
  with gzip.open(DATA / "mnist" / name) as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def split_of(index: int) -> str:
  """FSDD's official split (0-4 test), with 5-9 carved out as validation."""
  return "test" if index < 5 else "validation" if index < 10 else "train"


def rows(seed: int = 0):
  """[(image index, recording path, text, digit, split)], recording order."""
  rng = np.random.default_rng(seed)
  labels = _idx("t10k-first8000-labels-idx1-ubyte.gz", 8)
  pools = {d: list(rng.permutation(np.flatnonzero(labels == d)))
           for d in range(10)}
  out = []
  for path in sorted((DATA / "fsdd" / "recordings").glob("*.wav")):
    digit, _, index = path.stem.split("_")
    digit = int(digit)
    fact = FACTS[int(rng.integers(len(FACTS)))](digit)
    out.append([int(pools[digit].pop()), path, fact, digit,
                split_of(int(index))])
  for split in ("train", "validation", "test"):
    members = [r for r in out if r[4] == split]
    for r in rng.choice(len(members), round(len(members) *
                                            MISSING_TEXT_FRACTION),
                        replace=False):
      members[r][2] = ""
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, type=pathlib.Path)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--image_noise", type=float, default=0.0)
  parser.add_argument("--audio_snr_db", type=float, default=None)
  args = parser.parse_args()
  images = _idx("t10k-first8000-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
  (args.out / "images").mkdir(parents=True, exist_ok=True)
  if args.audio_snr_db is not None:
    (args.out / "audio").mkdir(exist_ok=True)
  rng = np.random.default_rng(args.seed + 1)
  with (args.out / "data.csv").open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["image", "audio", "text", "label", "split"])
    for image, recording, text, digit, split in rows(args.seed):
      name = f"images/{image}.png"
      pixels = images[image].astype(np.float64)
      if args.image_noise:
        pixels = pixels + rng.normal(0.0, args.image_noise, pixels.shape)
      PIL.Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(
          np.uint8)).save(args.out / name)
      audio = str(recording)
      if args.audio_snr_db is not None:
        samples, rate = sf.read(recording, dtype="float64")
        power = np.mean(samples ** 2) / 10 ** (args.audio_snr_db / 10)
        samples = samples + rng.normal(0.0, np.sqrt(power), samples.shape)
        audio = f"audio/{recording.name}"
        sf.write(args.out / audio, np.clip(samples, -1, 1 - 2 ** -15), rate,
                 subtype="PCM_16")
      writer.writerow([name, audio, text, str(digit), split])
  print(args.out / "data.csv")


if __name__ == "__main__":
  main()
