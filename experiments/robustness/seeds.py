"""The default recipe against image only over seeds, per leave-one-speaker-out
fold, from the robustness sweep's records (`results.json`).

Seed 0 is protocol `loso`, seeds 1 and 2 are `loso_seed1` and `loso_seed2`
(experiments/robustness/sweep.py). For each fold: test accuracy mean and
standard deviation over the seeds recorded for both models, and the paired
difference (default minus image only, same fold and seed). Writes the
table between the `<!-- seeds -->` markers of RESULTS.md and prints it.

  python experiments/run_sweep.py experiments/robustness \\
      --only 'loso_seed*/*/image_only@1200' \\
      --only 'loso_seed*/*/early_fusion+audio_dropout_high+cmvn+spec_augment@1200'
  python experiments/robustness/seeds.py
"""

import json
import pathlib
import statistics
import sys
from typing import Dict, List

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import run_sweep  # noqa: E402  pylint: disable=g-import-not-at-top

FUSED = "early_fusion+audio_dropout_high+cmvn+spec_augment@1200"
IMAGE = "image_only@1200"
SEEDS = {0: "loso", 1: "loso_seed1", 2: "loso_seed2"}
SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")


def paired(records: dict) -> Dict[str, Dict[int, tuple]]:
  """`{fold: {seed: (fused accuracy, image-only accuracy)}}` over the
  (fold, seed) pairs that have both runs."""
  out = {}
  for fold in SPEAKERS:
    for seed, protocol in SEEDS.items():
      fused = records.get(f"{protocol}/{fold}/{FUSED}")
      image = records.get(f"{protocol}/{fold}/{IMAGE}")
      if fused and image:
        out.setdefault(fold, {})[seed] = (
            fused["results"]["test"]["accuracy"],
            image["results"]["test"]["accuracy"])
  return out


def _mean_std(values: List[float]) -> str:
  std = statistics.stdev(values) if len(values) > 1 else 0.0
  return f"{statistics.mean(values):.4f} ± {std:.4f}"


def table(pairs: Dict[str, Dict[int, tuple]]) -> str:
  """The markdown table: a row per fold and one over folds."""
  rows = ["| fold | seeds | default (fused) | image only | default − image only, per seed | mean difference |",
          "|---|---|---|---|---|---|"]
  all_diffs, fold_means = [], []
  for fold, by_seed in pairs.items():
    seeds = sorted(by_seed)
    fused = [by_seed[s][0] for s in seeds]
    image = [by_seed[s][1] for s in seeds]
    diffs = [f - i for f, i in zip(fused, image)]
    all_diffs += diffs
    fold_means.append((statistics.mean(fused), statistics.mean(image)))
    rows.append(f"| {fold} | {', '.join(map(str, seeds))} | {_mean_std(fused)} "
                f"| {_mean_std(image)} | {', '.join(f'{d:+.4f}' for d in diffs)} "
                f"| {statistics.mean(diffs):+.4f} |")
  if fold_means:
    rows.append(
        f"| **over folds** | | {_mean_std([f for f, _ in fold_means])} "
        f"| {_mean_std([i for _, i in fold_means])} | "
        f"{sum(d > 0 for d in all_diffs)} of {len(all_diffs)} pairs above, "
        f"{sum(d < 0 for d in all_diffs)} below | "
        f"{statistics.mean(all_diffs):+.4f} ± "
        f"{statistics.stdev(all_diffs) if len(all_diffs) > 1 else 0.0:.4f} |")
  return "\n".join(rows)


def main():
  records = json.loads((HERE / "results.json").read_text())
  text = table(paired(records))
  print(text)
  run_sweep.replace_marked_block(HERE / "RESULTS.md", "seeds", text)


if __name__ == "__main__":
  main()
