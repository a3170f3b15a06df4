"""Partial, partly missing text on a digits manifest: image+audio+text vs
image+audio, 3 seeds each, through launch.py; the table into RESULTS.md.

  nice python experiments/manifest/run.py [--setting clean|noisy]
      [--runs runs/manifest] [--list]

Builds the manifest of `make_manifest.py` (with the setting's arguments,
`SETTINGS`) in `<runs>/data/` (once; `--runs` defaults to runs/manifest
for "clean", runs/manifest_noisy for "noisy"), then
runs every (variant, seed) not yet done (its workdir has results.json;
an interrupted run resumes) with `launch.py --config configs/manifest.py:
manifest=<runs>/data/data.csv` and the overrides below (the dataset
prepared into `<runs>/tensorflow_datasets`), and writes the
table between the setting's `<!-- table:<setting> -->` markers of
RESULTS.md. Both variants read
the same prepared dataset; image+audio sets `config.modalities`. The
per-subset accuracies are those of `results.json` (`accuracy_<subset>`, the
examples with exactly that subset in the data: "image+audio" are the rows
without text, for either model).
"""

import argparse
import json
import pathlib
import shlex
import statistics
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SEEDS = (0, 1, 2)
COMMON = {"data.image_size": 28, "num_train_steps": 600,
          "optimizer.warmup_steps": 50, "eval_every_steps": 200,
          "checkpoint_every_steps": 600, "log_every_steps": 50,
          "eval_splits": "('validation', 'test')"}
VARIANTS = {"image+audio+text": {},
            "image+audio": {"modalities": "('image', 'audio')"}}
SETTINGS = {"clean": [],
            "noisy": ["--image_noise", "128", "--audio_snr_db", "-6"]}
DEFAULT_RUNS = {"clean": "manifest", "noisy": "manifest_noisy"}
SUBSETS = {"rows with text": "image+audio+text",
           "rows without text": "image+audio"}


def command(runs: pathlib.Path, variant: str, seed: int) -> list:
  manifest = (runs / "data" / "data.csv").resolve()
  overrides = {**COMMON, **VARIANTS[variant], "seed": seed,
               "data.data_dir": str(runs / "tensorflow_datasets")}
  return [sys.executable, "launch.py", "--config",
          f"configs/manifest.py:manifest={manifest}", "--workdir",
          str(runs / variant / f"seed{seed}")] + [
              f"--config.{k}={v}" for k, v in overrides.items()]


def _mean_std(values) -> str:
  if not values:
    return "-"
  std = statistics.stdev(values) if len(values) > 1 else 0.0
  return f"{statistics.mean(values):.4f} ± {std:.4f}"


def table(runs: pathlib.Path) -> str:
  """The markdown table of the finished runs (mean ± std over seeds)."""
  head = ["model", "seeds", "validation accuracy", "test accuracy"] + [
      f"test: {name}" for name in SUBSETS] + ["wall time per run (s)"]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for variant in VARIANTS:
    results, times = [], []
    for seed in SEEDS:
      path = runs / variant / f"seed{seed}" / "results.json"
      if path.exists():
        results.append(json.loads(path.read_text()))
        info = json.loads((path.parent / "run_info.json").read_text())
        times.append(info["total_seconds"])
    cells = [variant, f"{len(results)}/{len(SEEDS)}",
             _mean_std([r["validation"]["accuracy"] for r in results]),
             _mean_std([r["test"]["accuracy"] for r in results])]
    for subset in SUBSETS.values():
      values = [r["test"][f"accuracy_{subset}"] for r in results]
      count = results[0]["test"][f"num_examples_{subset}"] if results else 0
      cells.append(f"{_mean_std(values)} ({count})")
    cells.append(f"{statistics.mean(times):.0f}" if times else "-")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_table(runs: pathlib.Path, setting: str) -> None:
  path = HERE / "RESULTS.md"
  text = path.read_text()
  start, end = f"<!-- table:{setting} -->\n", f"<!-- /table:{setting} -->"
  before, _, rest = text.partition(start)
  _, _, after = rest.partition(end)
  path.write_text(before + start + table(runs) + end + after)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--setting", choices=sorted(SETTINGS), default="clean")
  parser.add_argument("--runs", type=pathlib.Path, default=None)
  parser.add_argument("--list", action="store_true",
                      help="print the commands and exit")
  args = parser.parse_args()
  runs = (args.runs or REPO_ROOT / "runs" / DEFAULT_RUNS[args.setting]
          ).resolve()
  if not (runs / "data" / "data.csv").exists() and not args.list:
    subprocess.run([sys.executable, str(HERE / "make_manifest.py"), "--out",
                    str(runs / "data"), *SETTINGS[args.setting]], check=True)
  for variant in VARIANTS:
    for seed in SEEDS:
      cmd = command(runs, variant, seed)
      if args.list:
        print("python", shlex.join(cmd[1:]))
        continue
      if (runs / variant / f"seed{seed}" / "results.json").exists():
        continue
      print(f"{variant} seed {seed}", flush=True)
      subprocess.run(cmd, cwd=REPO_ROOT, check=True)
      write_table(runs, args.setting)
  if not args.list:
    write_table(runs, args.setting)


if __name__ == "__main__":
  main()
