"""Learning curves of the transfer sweep: how many steps each model needs.

  python experiments/transfer/analyse.py [--workdir runs/transfer]

Reads every finished run's metrics.jsonl (validation accuracy every 100
steps; validation = takes 5-9 of the four training speakers, so nothing here
looks at the test speaker) and results.json, then writes between the
`<!-- curves -->` markers of RESULTS.md a table of, per variant, the mean
validation accuracy at each evaluation step and the steps to reach the
from-scratch model's final validation accuracy of the same fold; and
curves.png (mean validation accuracy vs step, one line per variant).
"""

import argparse
import json
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import run_sweep  # noqa: E402  pylint: disable=g-import-not-at-top

SCRATCH = "early_fusion"


def validation_curve(workdir: pathlib.Path) -> dict:
  """`{step: validation accuracy}` of one run (the final evaluation at the
  last step included)."""
  curve = {}
  for line in (workdir / "metrics.jsonl").read_text().splitlines():
    r = json.loads(line)
    if r["split"] in ("validation", "final_validation"):
      curve[int(r["step"])] = r["accuracy"]
  return curve


def steps_to_reach(curve: dict, target: float):
  """The first evaluated step with accuracy >= target; None if never."""
  return next((s for s in sorted(curve) if curve[s] >= target), None)


def analyse(sweep, root: pathlib.Path):
  curves = {}
  for protocol, folds in sweep.PROTOCOLS.items():
    for fold in folds:
      for variant in sweep.VARIANTS:
        workdir = root / protocol / fold / variant
        if (workdir / "results.json").is_file():
          curves.setdefault(variant, {})[fold] = validation_curve(workdir)
  reach = {}
  for variant, per_fold in curves.items():
    reach[variant] = {}
    for fold, curve in per_fold.items():
      scratch = curves.get(SCRATCH, {}).get(fold)
      if scratch:
        reach[variant][fold] = steps_to_reach(curve, scratch[max(scratch)])
  return curves, reach


def markdown(curves, reach) -> str:
  steps = sorted({s for per_fold in curves.values() for c in per_fold.values()
                  for s in c})
  lines = ["| model | folds | " + " | ".join(f"step {s}" for s in steps)
           + f" | steps to reach `{SCRATCH}`'s final validation accuracy "
           "(per fold) |", "|---|---|" + "---|" * len(steps) + "---|"]
  for variant, per_fold in curves.items():
    means = []
    for s in steps:
      values = [c[s] for c in per_fold.values() if s in c]
      means.append(f"{statistics.mean(values):.4f}" if values else "—")
    folds = ", ".join(f"{f} {'never' if r is None else r}"
                      for f, r in reach.get(variant, {}).items())
    lines.append(f"| {variant} | {len(per_fold)} | " + " | ".join(means)
                 + f" | {folds or '—'} |")
  return "\n".join(lines)


def plot(path: pathlib.Path, curves) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for variant, per_fold in curves.items():
    steps = sorted({s for c in per_fold.values() for s in c})
    mean = [statistics.mean(c[s] for c in per_fold.values() if s in c)
            for s in steps]
    ax.plot(steps, mean, marker="o", label=f"{variant} ({len(per_fold)} folds)")
  ax.set_xlabel("training step")
  ax.set_ylabel("validation accuracy (mean over folds)")
  ax.set_ylim(bottom=max(0.0, ax.get_ylim()[0]))
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", type=pathlib.Path,
                      default=HERE.parents[1] / "runs" / "transfer")
  args = parser.parse_args()
  sweep = run_sweep.load_sweep(HERE)
  curves, reach = analyse(sweep, args.workdir)
  run_sweep.replace_marked_block(HERE / "RESULTS.md", "curves",
                                 markdown(curves, reach))
  plot(HERE / "curves.png", curves)
  (HERE / "curves.json").write_text(json.dumps(
      {"validation_accuracy": curves, "steps_to_reach_scratch": reach},
      indent=2) + "\n")
  print(markdown(curves, reach))


if __name__ == "__main__":
  main()
