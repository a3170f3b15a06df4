"""Runs an ablation sweep through launch.py and records its results.

  python experiments/run_sweep.py experiments/fusion_ablation \
      [--workdir runs/fusion_ablation] [--only 'loso/*/gated'] [--list]
  [--executor local --parallel 8 | --executor slurm --slurm KEY=VALUE ...]

A sweep folder holds `sweep.py` with
  CONFIG     the config file, e.g. "configs/av_digits.py";
  VARIANTS   {row name: (config-file argument, {config key: value})}, the
             models compared (rows of the table);
  PROTOCOLS  {protocol: {fold: {config key: value}}}, the evaluation
             protocols; a protocol's folds are averaged (mean, std, worst);
  COMMON     {config key: value}, the recipe shared by every run;
  UNIMODAL   names of the single-modality variants (the baselines a fused
             model must beat);
  REPORT_SPLIT  optional, the split whose accuracy the table reports
             (default "test"; "validation" for a recipe-selection sweep);
  METRIC     optional, the result key the table reports (default
             "accuracy"; e.g. "image_to_text_recall_at_1" for retrieval);
  RECIPE     optional, `RECIPE(config, overrides) -> str`: a variant's
             recipe in words (a "recipe" column of the table).
A sweep over several tasks (different configs, folds and variants) instead
holds `SECTIONS = {section: namespace with the names above}`; its runs are
named `<section>/<protocol>/<fold>/<variant>`, its tables `<section>/
<protocol>`.
In a string value, `{fold}` stands for the run's fold and `{runs}` for the
root of the sweep's workdirs, so a run can name another run of its fold,
e.g. `"model.encoders.audio.init_from": "{runs}/loso/{fold}/audio_only"`.
Every (protocol, fold, variant) is one `launch.py` process with its own
workdir `<workdir>/<protocol>/<fold>/<variant>`. A run whose record (same
command) is already in `<sweep>/results.json` is skipped, and an interrupted
run resumes from its last checkpoint, so the sweep can be stopped and
restarted at any time. Runs execute (experiments/executors.py) one after
another (`--executor local`, the default), N at once on this machine, each
pinned to its own GPUs or CPU cores (`--parallel N`, `--devices 0,1`), or
as SLURM job arrays through submitit (`--executor slurm`), requeued from
their checkpoint when preempted; see docs/clusters.md. After every run the table goes to `<sweep>/RESULTS.md`
(between the `<!-- table -->` markers; text around them is kept) and a plot
to `<sweep>/accuracy.png`.
"""

import argparse
import fnmatch
import importlib.util
import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
from typing import Dict, List, Tuple

import executors

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
run = executors.run_local


def load_sweep(folder: pathlib.Path):
  """Imports `<folder>/sweep.py`.

  Raises:
    FileNotFoundError: when the folder has no sweep.py.
  """
  path = folder / "sweep.py"
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist: a sweep folder needs a "
                            "sweep.py (see experiments/run_sweep.py)")
  spec = importlib.util.spec_from_file_location("sweep", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def sections(sweep) -> dict:
  """`{section name: section}`: the sweep's SECTIONS, or the sweep itself as
  its one unnamed section."""
  return getattr(sweep, "SECTIONS", None) or {"": sweep}


def _prefix(section_name: str) -> str:
  return f"{section_name}/" if section_name else ""


def plan(sweep, runs_root: str = "runs") -> Dict[str, List]:
  """`{run name: [config file with argument, overrides]}` of every run, in
  order (section by section, fold by fold, variants in their order), with
  `{fold}` and `{runs}` (= `runs_root`) substituted in string values."""
  runs = {}
  for section_name, section in sections(sweep).items():
    for protocol, folds in section.PROTOCOLS.items():
      for fold, fold_overrides in folds.items():
        for variant, (arg, overrides) in section.VARIANTS.items():
          config = f"{section.CONFIG}:{arg}" if arg else section.CONFIG
          merged = {**section.COMMON, **fold_overrides, **overrides}
          runs[f"{_prefix(section_name)}{protocol}/{fold}/{variant}"] = [
              config, {k: v.replace("{fold}", fold).replace(
                  "{runs}", str(runs_root)) if isinstance(v, str) else v
                       for k, v in merged.items()}]
  return runs


def section_of(sweep, run_name: str):
  """The section a run of `plan(sweep)` belongs to."""
  named = sections(sweep)
  return named.get(run_name.split("/", 1)[0], named.get(""))


def command(config: str, workdir: pathlib.Path, overrides: dict) -> list:
  return [sys.executable, "launch.py", "--config", config, "--workdir",
          str(workdir)] + [f"--config.{k}={v}" for k, v in overrides.items()]


def display(cmd: list) -> str:
  """The command as one would type it: `--config.k="('a',)"` quoting."""
  def quote(arg):
    if shlex.quote(arg) == arg:
      return arg
    key, sep, value = arg.partition("=")
    if sep and '"' not in value and "$" not in value and "`" not in value:
      return f'{key}="{value}"'
    return shlex.quote(arg)
  return " ".join(["python", *map(quote, cmd[1:])])


def report_split(sweep) -> str:
  """The split whose accuracy the sweep reports (REPORT_SPLIT, else test)."""
  return getattr(sweep, "REPORT_SPLIT", "test")


def metric(sweep) -> str:
  """The result key the sweep reports (METRIC, else accuracy)."""
  return getattr(sweep, "METRIC", "accuracy")


def summarize(sweep, records: dict) -> Dict[str, Dict[str, dict]]:
  """`{table: {variant: statistics over its finished folds}}`, a table per
  protocol (`<section>/<protocol>` in a sweep with SECTIONS). The reported
  metric is under "accuracy" whatever METRIC names."""
  out = {}
  for section_name, section in sections(sweep).items():
    split, key = report_split(section), metric(section)
    for protocol, folds in section.PROTOCOLS.items():
      stats = out[_prefix(section_name) + protocol] = {}
      for variant in section.VARIANTS:
        done = [records[k] for k in (
            f"{_prefix(section_name)}{protocol}/{f}/{variant}" for f in folds)
                if k in records]
        if not done:
          continue
        acc = [r["results"][split][key] for r in done]
        f1 = [r["results"][split].get("macro_f1") for r in done]
        f1 = None if None in f1 else f1
        info = [r["run_info"] for r in done]
        stats[variant] = {
            "folds": len(done), "of": len(folds),
            "accuracy": statistics.mean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "accuracy_worst": min(acc),
            "macro_f1": statistics.mean(f1) if f1 else None,
            "macro_f1_std": statistics.stdev(f1) if f1 and len(f1) > 1
                            else 0.0,
            "num_params": info[0].get("num_params"),
            "examples_per_second": statistics.mean(
                i.get("train_examples_per_second") or 0.0 for i in info),
            "wall_seconds": statistics.mean(r["wall_seconds"] for r in done)}
  return out


def verdict(stats: Dict[str, dict], unimodal) -> str:
  """Whether the best fused variant beats the best single modality."""
  uni = {v: s for v, s in stats.items() if v in unimodal}
  fused = {v: s for v, s in stats.items() if v not in unimodal}
  if not uni or not fused:
    return "Not enough finished runs to compare fused and unimodal models."
  best_uni = max(uni, key=lambda v: uni[v]["accuracy"])
  best = max(fused, key=lambda v: fused[v]["accuracy"])
  gap = fused[best]["accuracy"] - uni[best_uni]["accuracy"]
  beating = sorted(v for v in fused
                   if fused[v]["accuracy"] > uni[best_uni]["accuracy"])
  return (f"Best single modality: `{best_uni}` "
          f"{uni[best_uni]['accuracy']:.4f}. Best fused model: `{best}` "
          f"{fused[best]['accuracy']:.4f} ({gap * 100:+.2f} points). "
          f"{len(beating)} of {len(fused)} fused models beat the best single "
          f"modality" + (f": {', '.join(f'`{v}`' for v in beating)}."
                         if beating else "."))


def _section_table(heading: str, section, stats: dict, folds: int,
                   runs: dict) -> List[str]:
  split, key = report_split(section), metric(section)
  recipe = getattr(section, "RECIPE", None)
  pm = lambda m, sd: f"{m:.4f} ± {sd:.4f}" if folds > 1 else f"{m:.4f}"
  lines = [f"### {heading} ({folds} fold{'s' * (folds > 1)})", "",
           f"| model | {split} {key} | worst fold | {split} macro F1 | "
           "parameters | train examples/s | wall time per run (s) | "
           "folds done |" + (" recipe |" if recipe else ""),
           "|---|---|---|---|---|---|---|---|" + ("---|" if recipe else "")]
  for variant, s in stats.items():
    f1 = pm(s["macro_f1"], s["macro_f1_std"]) if s["macro_f1"] is not None \
        else "—"
    row = (f"| {variant} | {pm(s['accuracy'], s['accuracy_std'])} | "
           f"{s['accuracy_worst']:.4f} | {f1} "
           f"| {format(s['num_params'], ',') if s['num_params'] else '—'} | "
           f"{s['examples_per_second']:.0f} | "
           f"{s['wall_seconds']:.0f} | {s['folds']}/{s['of']} |")
    if recipe:
      row += f" {recipe(*runs[variant])} |"
    lines.append(row)
  unimodal = getattr(section, "UNIMODAL", ())
  return lines + (["", verdict(stats, unimodal)] if unimodal else []) + [""]


def table(sweep, records: dict) -> str:
  """The markdown tables: one per protocol, then every run's command."""
  stats = summarize(sweep, records)
  runs = plan(sweep)
  lines = []
  for section_name, section in sections(sweep).items():
    for protocol, folds in section.PROTOCOLS.items():
      heading = _prefix(section_name) + protocol
      if not stats[heading]:
        continue
      first = f"{heading}/{next(iter(folds))}"
      lines += _section_table(heading, section, stats[heading], len(folds), {
          v: runs[f"{first}/{v}"] for v in section.VARIANTS})
  lines += ["<details><summary>Every run: the reported figure and its "
            "command</summary>", "", "| run | reported | command |",
            "|---|---|---|"]
  for name, r in records.items():
    section = section_of(sweep, name)
    value = r["results"][report_split(section)][metric(section)]
    lines.append(f"| {name} | {value:.4f} | `{r['command']}` |")
  lines += ["", "</details>"]
  return "\n".join(lines)


def replace_marked_block(path: pathlib.Path, marker: str, content: str) -> None:
  """Puts `content` between `<!-- marker -->` and `<!-- /marker -->` in the
  markdown file `path` (appended, markers included, when they are absent);
  the text around them is kept."""
  text = path.read_text() if path.exists() else "# Results\n\n"
  start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
  block = f"{start}\n{content}\n{end}"
  if start in text:
    head, rest = text.split(start, 1)
    text = head + block + rest.split(end, 1)[1]
  else:
    text = f"{text.rstrip()}\n\n{block}\n"
  path.write_text(text)


def write_results(folder: pathlib.Path, sweep, records: dict) -> None:
  """Writes results.json, the RESULTS.md table and accuracy.png."""
  tmp = folder / "results.json.tmp"
  tmp.write_text(json.dumps(records, indent=2) + "\n")
  os.replace(tmp, folder / "results.json")
  replace_marked_block(folder / "RESULTS.md", "table", table(sweep, records))
  named = list(sections(sweep).values())
  label = " / ".join(dict.fromkeys(
      f"{report_split(n)} {metric(n)}" for n in named))
  plot(folder / "accuracy.png", summarize(sweep, records), label)


def plot_rows(stats: Dict[str, Dict[str, dict]]) -> List[Tuple[str, str]]:
  """The (variant, table) rows of the plot: only those with results, a
  variant's rows adjacent, in the order of first appearance."""
  protocols = [p for p in stats if stats[p]]
  variants = list(dict.fromkeys(v for p in protocols for v in stats[p]))
  return [(v, p) for v in variants for p in protocols if v in stats[p]]


def plot(path: pathlib.Path, stats: Dict[str, Dict[str, dict]],
         split: str = "test accuracy") -> None:
  """Horizontal bars, one row per (variant, table) that has results: the
  mean reported figure ± std, coloured by table (a protocol), a variant's
  rows adjacent; `split` labels the axis. Rows only where a result exists,
  so tables with variants of their own (the zoo's sections) get no empty
  slots."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import patches  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  protocols = [p for p in stats if stats[p]]
  rows = plot_rows(stats)
  if not rows:
    return
  colors = {p: f"C{i % 10}" for i, p in enumerate(protocols)}
  fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 2.0))
  for i, (v, p) in enumerate(rows):
    s = stats[p][v]
    ax.barh(i, s["accuracy"], 0.8, xerr=s.get("accuracy_std", 0.0),
            color=colors[p], capsize=2)
  ax.set_yticks(range(len(rows)), [v for v, _ in rows])
  ax.set_ylim(len(rows) - 0.5, -0.5)  # the first row at the top
  lowest = min(s["accuracy"] - s.get("accuracy_std", 0.0)
               for p in protocols for s in stats[p].values())
  ax.set_xlim(max(0.0, lowest - 0.02), 1.0)
  ax.set_xlabel(f"{split} (mean ± std over folds)")
  handles = [patches.Patch(color=colors[p], label=p) for p in protocols]
  # Above the bars, never over them.
  ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
            ncol=2, fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("sweep", type=pathlib.Path, help="sweep folder")
  parser.add_argument("--workdir", type=pathlib.Path, default=None,
                      help="root of the runs' workdirs (default runs/<sweep>)")
  parser.add_argument("--only", action="append", default=None,
                      help="run only names matching this glob (repeatable)")
  parser.add_argument("--list", action="store_true",
                      help="print every run's command and status, run nothing")
  parser.add_argument("--rerun", action="store_true",
                      help="run again even where a record exists")
  parser.add_argument("--executor", choices=("local", "slurm"),
                      default="local", help="where runs execute: this "
                      "machine, or SLURM job arrays through submitit")
  parser.add_argument("--parallel", type=int, default=None,
                      help="local: runs at once, each on its own devices "
                      "(the visible GPUs, else CPU cores, split evenly)")
  parser.add_argument("--devices", action="append", default=None,
                      help="local: one slot's device ids, e.g. 0,1 "
                      "(repeatable: one slot each; GPU indices, or CPU "
                      "cores with --pin cpu)")
  parser.add_argument("--pin", choices=("auto", "cuda", "cpu", "none"),
                      default="auto", help="local --parallel: what a slot "
                      "pins: CUDA_VISIBLE_DEVICES, CPU affinity, or nothing; "
                      "auto: cuda where GPUs are visible, else cpu")
  parser.add_argument("--slurm", action="append", default=[],
                      metavar="KEY=VALUE", help="slurm: a submitit "
                      "parameter (repeatable): timeout_min (required), "
                      "gpus_per_node, cpus_per_task, mem_gb, nodes, "
                      "tasks_per_node, partition, account, qos, constraint, "
                      "array_parallelism, ...")
  args = parser.parse_args()
  if args.executor == "slurm" and (args.parallel or args.devices):
    parser.error("--parallel and --devices are for --executor local; SLURM "
                 "runs jobs at once (--slurm array_parallelism=N)")
  try:
    params = (executors.slurm_parameters(args.slurm)
              if args.executor == "slurm" else None)
  except ValueError as e:
    parser.error(str(e))
  sweep = load_sweep(args.sweep)
  root = (args.workdir or REPO_ROOT / "runs" / args.sweep.resolve().name).resolve()
  shown_root = f"runs/{args.sweep.resolve().name}"
  results_file = args.sweep / "results.json"
  records = json.loads(results_file.read_text()) if results_file.exists() else {}
  runs = plan(sweep, root)
  todo, shown = [], {}
  for name, (config, overrides) in runs.items():
    if args.only and not any(fnmatch.fnmatch(name, p) for p in args.only):
      continue
    workdir = root / name
    cmd = command(config, workdir, overrides)
    shown[name] = display(cmd).replace(str(root), shown_root)
    done = name in records and records[name]["command"] == shown[name]
    if args.list:
      print(f"[{'done' if done else 'todo'}] {shown[name]}")
    elif not done or args.rerun:
      todo.append(executors.Todo(name, cmd, workdir))

  def on_done(name, record):
    if isinstance(record, BaseException):
      why = (f"exit status {record.returncode}" if isinstance(
          record, subprocess.CalledProcessError) else str(record))
      print(f"[{name}] FAILED ({why}); see {root / name / 'launch.log'}",
            flush=True)
      return
    record["command"] = shown[name]
    records[name] = record
    section = section_of(sweep, name)
    split, key = report_split(section), metric(section)
    print(f"[{name}] {split} {key} {record['results'][split][key]:.4f}"
          f" in {record['wall_seconds']:.0f} s", flush=True)
    write_results(args.sweep, sweep, {n: records[n] for n in runs if n in records})

  if not todo:
    return
  if args.executor == "slurm":
    executors.run_slurm(todo, root, params, on_done)
  elif args.parallel or args.devices:
    try:
      pin, groups = executors.device_groups(args.parallel, args.devices,
                                            args.pin)
    except ValueError as e:
      parser.error(str(e))
    print(f"{len(groups)} runs at once, pinned ({pin}) to {groups}", flush=True)
    executors.run_parallel(todo, root, pin, groups, on_done, run)
  else:
    for t in todo:
      print(f"[{t.name}] {shown[t.name]}", flush=True)
      try:
        record = run(t.cmd, t.workdir)
      except subprocess.CalledProcessError as e:
        record = e
      on_done(t.name, record)


if __name__ == "__main__":
  main()
