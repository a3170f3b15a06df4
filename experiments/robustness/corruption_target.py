"""Issue 32's target over the folds: a corrupted modality must never drag the
fused model below what it scores with that modality marked missing.

For each fused variant, from each fold's latest `robustness*/robustness.json`
(`launch.py --mode=robustness`, read as its --reference_workdir is): the
fraction of (family, corrupted level, fold) cells where fused accuracy with
modality m corrupted >= the same model's accuracy with m marked missing,
minus 1 point (`mmjax.analysis.robustness_metrics.target_summary`), for the
families the variant trains with (`config.corruption_augmentation`), the
held-out ones and all, and the worst cell; a per-family table of fold means
at each severity (fused, marked missing, image only, audio only); and a
figure, one panel per family. Writes the tables between the
`<!-- corruption_target -->` markers of RESULTS.md and the figure
corruption_target.png, and prints the tables.

Leave-one-speaker-out (workdirs <runs>/<protocol>/<fold>/<variant>):

  python experiments/robustness/corruption_target.py \\
      --fused 'early_fusion+audio_dropout_high+cmvn+spec_augment@1200' \\
      --fused RECIPE --image_only image_only@1200 --audio_only audio_only@1200

The official split (one "fold"; a workdir per variant):

  python experiments/robustness/corruption_target.py \\
      --workdir default=runs/av_digits --workdir image_only=runs/image_only \\
      --workdir audio_only=runs/audio_only --fused default \\
      --image_only image_only --audio_only audio_only \\
      --marker corruption_target_official \\
      --figure experiments/robustness/corruption_target_official.png
"""

import argparse
import pathlib
import statistics
import sys
from typing import Dict, List, Mapping, Optional, Sequence

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(REPO_ROOT))
import run_sweep  # noqa: E402  pylint: disable=g-import-not-at-top
from mmjax.analysis import corruptions, plots, robustness_metrics  # noqa: E402  pylint: disable=g-import-not-at-top
from mmjax.evaluation import robustness  # noqa: E402  pylint: disable=g-import-not-at-top

DEFAULT_FUSED = "early_fusion+audio_dropout_high+cmvn+spec_augment@1200"
SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")
UNIMODAL = ("image", "audio")


def load(locations: Mapping[str, Mapping[str, pathlib.Path]]
         ) -> Dict[str, Dict[str, dict]]:
  """`{fold: {variant: robustness.json}}` of each workdir's latest analysis;
  a workdir without one is left out (printed on stderr)."""
  out = {}
  for fold, variants in locations.items():
    for variant, workdir in variants.items():
      try:
        out.setdefault(fold, {})[variant] = robustness.load_latest_result(
            workdir, "workdir")
      except FileNotFoundError as e:
        print(f"skipped: {e}", file=sys.stderr)
  return out


def _mean(values: Sequence[float]) -> float:
  return statistics.fmean(values)


def _unimodal_curves(loaded, variant: str, modality: str,
                     families: Mapping[str, dict]) -> Dict[str, List[float]]:
  """Fold-mean curve of a single-modality variant for each family: its own
  curve for the families of its modality (over the folds that have it), its
  clean accuracy (flat) for the others; no entry where no fold has one."""
  runs = [runs[variant] for runs in loaded.values() if variant in runs]
  out = {}
  for family, info in families.items():
    if info["modality"] == modality:
      rows = [run["corruptions"][family]["accuracy"] for run in runs
              if family in run["corruptions"]]
    else:
      rows = [[run["modality_subsets_accuracy"][run["test_split"]][modality]]
              * len(info["levels"]) for run in runs]
    if rows:
      out[family] = [_mean(col) for col in zip(*rows)]
  return out


def _with_missing(run: dict) -> Dict[str, dict]:
  """`run`'s curves, each with "modality" and, for a two-modality run,
  "missing_accuracy" (filled in from its modality subsets for analyses
  recorded before robustness.json had them)."""
  subsets = run["modality_subsets_accuracy"][run["test_split"]]
  modalities = max(subsets, key=len).split("+")
  out = {}
  for family, curve in run["corruptions"].items():
    modality = curve.get("modality") or (
        corruptions.CORRUPTIONS[family].modality
        if family in corruptions.CORRUPTIONS else family.split("_")[0])
    curve = {**curve, "modality": modality}
    others = [m for m in modalities if m != modality]
    if "missing_accuracy" not in curve and len(modalities) == 2:
      curve["missing_accuracy"] = subsets["+".join(others)]
    out[family] = curve
  return out


def summarise(loaded: Mapping[str, Mapping[str, dict]], fused: Sequence[str],
              unimodal: Mapping[str, Optional[str]],
              split_from: Optional[str] = None,
              tolerance: float = 0.01) -> dict:
  """The target and fold-mean curves of the fused variants.

  Args:
    loaded: `{fold: {variant: robustness.json}}` (`load`).
    fused: fused variant names.
    unimodal: `{"image": variant or None, "audio": variant or None}`.
    split_from: a fused variant whose train/held-out split of the families
      all variants are scored with (default: each variant's own).
    tolerance: the target's allowed shortfall (0.01 = 1 point).

  Returns:
    `{"target": {variant: target_summary + "folds"}, "families":
    {family: {"levels", "unit", "modality", "split": {variant: split}}},
    "curves": {variant: {family: fold-mean accuracies}}, "missing":
    {variant: {family: fold-mean marked-missing accuracy}}, "unimodal":
    {modality: {"variant", "curves"}}}`.
  """
  families, target, curves, missing = {}, {}, {}, {}
  for variant in fused:
    cells, rows, folds = [], {}, []
    for fold, runs in loaded.items():
      if variant not in runs:
        continue
      run_curves = _with_missing(runs[variant])
      if run_curves:  # analysed with --corruptions=none: no cells
        folds.append(fold)
      if split_from and split_from in runs:
        run_curves = {f: {**c, "family_split": runs[split_from]["corruptions"]
                          .get(f, {}).get("family_split", "heldout")}
                      for f, c in run_curves.items()}
      cells += robustness_metrics.target_cells(run_curves, fold=fold)
      for family, c in run_curves.items():
        info = families.setdefault(family, {
            "levels": c["levels"], "unit": c["unit"], "split": {},
            "modality": c["modality"]})
        info["split"][variant] = c.get("family_split", "heldout")
        rows.setdefault(family, []).append(c)
    target[variant] = {**robustness_metrics.target_summary(cells, tolerance),
                       "folds": folds}
    curves[variant] = {f: [_mean(a) for a in zip(*(c["accuracy"] for c in cs))]
                       for f, cs in rows.items()}
    missing[variant] = {f: _mean([c["missing_accuracy"] for c in cs])
                        for f, cs in rows.items()
                        if all("missing_accuracy" in c for c in cs)}
  return {"target": target, "families": families, "curves": curves,
          "missing": missing,
          "unimodal": {m: {"variant": v, "curves": _unimodal_curves(
              loaded, v, m, families)} for m, v in unimodal.items() if v}}


def _fraction(group: dict) -> str:
  if not group["cells"]:
    return "no cells"
  return f"{group['met']} of {group['cells']} ({group['fraction']:.1%})"


def _level(level: float, index: int) -> str:
  return "clean" if index == 0 else f"{level:g}"


def markdown(summary: dict) -> str:
  """The target table and the per-family table."""
  target = summary["target"]
  tolerance = next(iter(target.values()))["tolerance"] if target else 0.01
  lines = [
      f"Cells (family, corrupted level, fold) where fused accuracy with the "
      f"modality corrupted >= the same model with it marked missing − "
      f"{100 * tolerance:g} point(s):", "",
      "| fused variant | folds | train families | held-out families | all "
      "| worst cell (family, level, fold: accuracy, marked missing) |",
      "|---|---|---|---|---|---|"]
  for variant, t in target.items():
    w = t["all"]["worst"]
    worst = (f"{w['family']}, {w['level']:g}, {w['fold']}: "
             f"{w['accuracy']:.4f}, {w['missing_accuracy']:.4f}"
             if w else "")
    lines.append(f"| {variant} | {len(t['folds'])} | {_fraction(t['train'])} "
                 f"| {_fraction(t['heldout'])} | {_fraction(t['all'])} "
                 f"| {worst} |")
  variants = list(summary["curves"])
  unimodal = summary["unimodal"]
  lines += [
      "", "Mean over folds at each severity (a single-modality model of the "
      "other modality is untouched by a corruption: its clean accuracy):", "",
      "| family | split | level | " + " | ".join(
          [f"{v} | {v}, marked missing" for v in variants] +
          [f"{m} only ({u['variant']})" for m, u in unimodal.items()]) +
      " |",
      "|---" * (3 + 2 * len(variants) + len(unimodal)) + "|"]
  for family, info in summary["families"].items():
    split = "/".join(dict.fromkeys(info["split"].values()))
    for i, level in enumerate(info["levels"]):
      cells = []
      for v in variants:
        curve = summary["curves"][v].get(family)
        cells.append(f"{curve[i]:.4f}" if curve else "")
        value = summary["missing"][v].get(family)
        cells.append(f"{value:.4f}" if value is not None else "")
      for u in unimodal.values():
        curve = u["curves"].get(family)
        cells.append(f"{curve[i]:.4f}" if curve and i < len(curve) else "")
      lines.append(f"| {family if i == 0 else ''} | {split if i == 0 else ''} "
                   f"| {_level(level, i)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def figure(summary: dict, path: pathlib.Path) -> Dict[str, List[str]]:
  """One panel per family: each fused variant (solid) and its marked-missing
  line (dashed, same colour), the single-modality variants (their curve for
  a family of their modality, flat clean accuracy for the others)."""
  families = summary["families"]

  def curve(family, accuracy):
    return {"levels": families[family]["levels"],
            "unit": families[family]["unit"], "accuracy": accuracy}

  models, flat, colors = {}, {}, {}
  for i, (variant, by_family) in enumerate(summary["curves"].items()):
    models[variant] = {f: curve(f, a) for f, a in by_family.items()}
    flat[f"{variant}, marked missing"] = summary["missing"][variant]
    colors[variant] = colors[f"{variant}, marked missing"] = f"C{i}"
  for modality, u in summary["unimodal"].items():
    label = f"{modality} only ({u['variant']})"
    models[label] = {f: curve(f, a) for f, a in u["curves"].items()
                     if families[f]["modality"] == modality}
    flat[label] = {f: a[0] for f, a in u["curves"].items()
                   if families[f]["modality"] != modality}
  heldout = [f for f, info in families.items()
             if "heldout" in info["split"].values()]
  return plots.corruption_curves(models, path, flat=flat, heldout=heldout,
                                 colors=colors)


def locations(args) -> Dict[str, Dict[str, pathlib.Path]]:
  """`{fold: {variant: workdir}}` from the command line."""
  variants = [*args.fused, *(v for v in (args.image_only, args.audio_only) if v)]
  if args.workdir:
    named = dict(w.split("=", 1) for w in args.workdir)
    unknown = sorted(set(variants) - set(named))
    if unknown:
      raise SystemExit(f"--workdir NAME=PATH missing for {unknown}")
    return {args.fold_name: {v: pathlib.Path(named[v]) for v in variants}}
  root = args.runs / args.protocol
  return {fold: {v: root / fold / v for v in variants}
          for fold in args.folds.split(",")}


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--runs", type=pathlib.Path,
                      default=REPO_ROOT / "runs" / "robustness",
                      help="root of the sweep's workdirs")
  parser.add_argument("--protocol", default="loso")
  parser.add_argument("--folds", default=",".join(SPEAKERS),
                      help="comma-separated")
  parser.add_argument("--fused", action="append", default=None,
                      help=f"a fused variant (repeatable; default "
                           f"{DEFAULT_FUSED})")
  parser.add_argument("--image_only", default="image_only@1200",
                      help="the image-only variant ('' for none)")
  parser.add_argument("--audio_only", default="audio_only@1200",
                      help="the audio-only variant ('' for none)")
  parser.add_argument("--workdir", action="append", default=None,
                      help="NAME=PATH: one 'fold' (e.g. the official split) "
                           "with a workdir per variant, instead of --runs")
  parser.add_argument("--fold_name", default="official",
                      help="the fold's name with --workdir")
  parser.add_argument("--split_from", default=None,
                      help="score every variant with this fused variant's "
                           "train/held-out split of the families")
  parser.add_argument("--tolerance", type=float, default=0.01)
  parser.add_argument("--results", type=pathlib.Path,
                      default=HERE / "RESULTS.md")
  parser.add_argument("--marker", default="corruption_target")
  parser.add_argument("--figure", type=pathlib.Path,
                      default=HERE / "corruption_target.png")
  args = parser.parse_args(argv)
  args.fused = args.fused or [DEFAULT_FUSED]
  return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
  args = parse(argv)
  summary = summarise(load(locations(args)), args.fused,
                      {"image": args.image_only, "audio": args.audio_only},
                      args.split_from, args.tolerance)
  text = markdown(summary) + (
      f"\n\n![corruption target]({args.figure.name})"
      if args.figure.resolve().parent == args.results.resolve().parent
      else "")
  print(text)
  run_sweep.replace_marked_block(args.results, args.marker, text)
  figure(summary, args.figure)
  return summary


if __name__ == "__main__":
  main()
