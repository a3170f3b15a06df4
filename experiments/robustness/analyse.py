"""Robustness analysis of the robustness sweep's trained runs.

  python experiments/robustness/analyse.py [--workdir runs/robustness]

For every run of `analysed_runs` (after `run_sweep.py` trained it), runs
`launch.py --mode=robustness` with the run's own config (missing
modalities, corruption sweeps, CKA / mutual information, pictures) unless its
workdir already has robustness/robustness.json; late fusion, analysed
first, is the reference of effective robustness. Then writes into this
folder: the tables between the `<!-- analysis -->` markers of RESULTS.md,
analysis.json, and corruptions.png (accuracy vs corruption level, one line
per model, fold ANALYSIS_FOLD).
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1]))
import run_sweep  # noqa: E402  pylint: disable=g-import-not-at-top
from mmjax.analysis import plots  # noqa: E402  pylint: disable=g-import-not-at-top

REFERENCE = "late_fusion"
ANALYSIS_FOLD = "theo"
CHOSEN = "early_fusion+audio_dropout_high+cmvn+spec_augment@1200"
FUSED_WITH_DROPOUT = (CHOSEN, "early_fusion+anti_laziness@1200",
                      "early_fusion+anti_laziness", "gated+anti_laziness",
                      "cross_attention+anti_laziness", "bottleneck+anti_laziness")
PLAIN_FUSED = ("early_fusion", "early_fusion@1200", "gated", "cross_attention",
               "bottleneck")


# Single-modality runs trained with a fused variant's recipe where it is not
# "<modality>_only@<steps>": CMVN and SpecAugment change only the audio.
SINGLE_MODALITY = {CHOSEN: {"image": "image_only@1200",
                            "audio": "audio_only+cmvn+spec_augment@1200"}}


def single_modality_variant(variant: str, modality: str) -> str:
  """The single-modality run with the recipe of `variant` ("...@1200" ->
  "<modality>_only@1200", or as listed in SINGLE_MODALITY)."""
  if variant in SINGLE_MODALITY:
    return SINGLE_MODALITY[variant][modality]
  _, at, steps = variant.partition("@")
  return f"{modality}_only{at}{steps}"


def analysed_runs(sweep) -> list:
  """Run names to analyse, reference first: every run of ANALYSIS_FOLD
  (corruption curves and intermodal analysis), then, on the other folds,
  the runs trained with modality dropout and plain early fusion
  (missing-modality table; no corruption sweeps)."""
  names = [f"loso/{ANALYSIS_FOLD}/{REFERENCE}"] + [
      f"loso/{ANALYSIS_FOLD}/{v}" for v in sweep.VARIANTS if v != REFERENCE]
  for fold in sweep.PROTOCOLS["loso"]:
    if fold != ANALYSIS_FOLD:
      names += [f"loso/{fold}/{v}" for v in FUSED_WITH_DROPOUT + PLAIN_FUSED[:2]]
  return names


def analyse(name: str, config: str, overrides: dict, root: pathlib.Path,
            reference: pathlib.Path) -> dict:
  """robustness.json of one run, running launch.py --mode=robustness first
  when it has none. Returns None when the run is not trained yet."""
  workdir = root / name
  out = workdir / "robustness" / "robustness.json"
  if not (workdir / "results.json").exists():
    return None
  if not out.exists():
    cmd = run_sweep.command(config, workdir, overrides) + ["--mode=robustness"]
    if f"/{ANALYSIS_FOLD}/" not in name:
      cmd.append("--corruptions=none")
    if (reference / "robustness" / "robustness.json").exists() and (
        workdir != reference):
      cmd += ["--reference_workdir", str(reference)]
    print(f"[{name}] {run_sweep.display(cmd)}", flush=True)
    with open(workdir / "robustness.log", "a") as log:
      if subprocess.run(cmd, cwd=run_sweep.REPO_ROOT, stdout=log,
                        stderr=subprocess.STDOUT).returncode:
        print(f"[{name}] FAILED; see {workdir / 'robustness.log'}", flush=True)
        return None
  return json.loads(out.read_text())


def missing_modality_table(sweep, records: dict, reports: dict) -> list:
  """Rows: fused model with one modality present vs that modality's model."""
  lines = ["| model | present | fused model, other modality missing | "
           "single-modality model | difference (points) |",
           "|---|---|---|---|---|"]
  for variant in FUSED_WITH_DROPOUT + PLAIN_FUSED:
    for m in ("image", "audio"):
      fused, single = [], []
      for fold in sweep.PROTOCOLS["loso"]:
        report = reports.get(f"loso/{fold}/{variant}")
        uni = records.get(f"loso/{fold}/{single_modality_variant(variant, m)}")
        if report and uni:
          fused.append(report["modality_subsets_accuracy"]["test"][m])
          single.append(uni["results"]["test"]["accuracy"])
      if fused:
        f, s = statistics.mean(fused), statistics.mean(single)
        lines.append(f"| {variant} | {m} only | {f:.4f} | {s:.4f} | "
                     f"{(f - s) * 100:+.2f} ({len(fused)} folds) |")
  return lines


def fold_tables(reports: dict) -> list:
  """Corruption robustness and intermodal analysis of ANALYSIS_FOLD."""
  rows = {n.split("/")[-1]: r for n, r in reports.items()
          if n.startswith(f"loso/{ANALYSIS_FOLD}/")}
  names = list(next(iter(rows.values()))["corruptions"]) if rows else []
  lines = ["| model | clean | " + " | ".join(
      f"{c} relative (effective)" for c in names) + " |",
           "|---" * (len(names) + 2) + "|"]
  for model, r in rows.items():
    cells = []
    for c in names:
      curve = r["corruptions"].get(c)
      if curve is None:
        cells.append("—")
        continue
      eff = curve.get("effective_robustness")
      cells.append(f"{curve['relative_robustness']:.4f}"
                   + (f" ({eff:+.4f})" if eff is not None else ""))
    clean = r["modality_subsets_accuracy"]["test"][max(
        r["modality_subsets_accuracy"]["test"], key=len)]
    lines.append(f"| {model} | {clean:.4f} | " + " | ".join(cells) + " |")
  lines += ["", "| model | CKA image~fused | CKA audio~fused | CKA image~audio "
            "| MI image~audio (nats) | LOMO delta image | LOMO delta audio |",
            "|---|---|---|---|---|---|---|"]
  for model, r in rows.items():
    i = r["intermodal"]
    if not i["cka"]:
      continue
    get = lambda d, k: f"{d[k]:.4f}" if k in d else "—"
    lomo = i["leave_one_modality_out_accuracy_delta"]
    lines.append(
        f"| {model} | {get(i['cka'], 'image~fused')} | "
        f"{get(i['cka'], 'audio~fused')} | {get(i['cka'], 'image~audio')} | "
        f"{get(i['mutual_information_nats'], 'image~audio')} | "
        f"{get(lomo, 'image')} | {get(lomo, 'audio')} |")
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", type=pathlib.Path,
                      default=run_sweep.REPO_ROOT / "runs" / "robustness")
  args = parser.parse_args()
  sweep = run_sweep.load_sweep(HERE)
  plan = run_sweep.plan(sweep)
  records = json.loads((HERE / "results.json").read_text())
  reference = args.workdir / f"loso/{ANALYSIS_FOLD}/{REFERENCE}"
  # Reports already recorded stay, for runs whose workdir is gone.
  recorded = HERE / "analysis.json"
  reports = json.loads(recorded.read_text()) if recorded.exists() else {}
  reference_report = reference / "robustness" / "robustness.json"
  if not reference_report.exists() and f"loso/{ANALYSIS_FOLD}/{REFERENCE}" in reports:
    # The reference's workdir is gone: its recorded report stands in.
    reference_report.parent.mkdir(parents=True, exist_ok=True)
    reference_report.write_text(json.dumps(
        reports[f"loso/{ANALYSIS_FOLD}/{REFERENCE}"]))
  for name in analysed_runs(sweep):
    if name in plan:
      report = analyse(name, *plan[name], args.workdir, reference)
      if report:
        reports[name] = report
  (HERE / "analysis.json").write_text(json.dumps(reports, indent=1) + "\n")
  curves = {n.split("/")[-1]: r["corruptions"] for n, r in reports.items()
            if n.startswith(f"loso/{ANALYSIS_FOLD}/")}
  plots.corruption_curves(curves, HERE / "corruptions.png")
  block = ["### Missing modality at test time (mean over folds)", "",
           *missing_modality_table(sweep, records, reports), "",
           f"### Corruptions and intermodal analysis (fold {ANALYSIS_FOLD})",
           "", *fold_tables(reports)]
  run_sweep.replace_marked_block(HERE / "RESULTS.md", "analysis",
                                 "\n".join(block))


if __name__ == "__main__":
  main()
