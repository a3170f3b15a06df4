"""Runs an ablation sweep through launch.py and records its results.

  python experiments/run_sweep.py experiments/av_digits_ablation \
      [--workdir runs/av_digits_ablation] [--only official/early_fusion]

A sweep folder holds `sweep.py` with `CONFIG` (a config file) and `RUNS`
(`{run name: {config key: value}}`). Each run is one `launch.py` process with
`--config.<key>=<value>` overrides and its own workdir (so an interrupted
sweep resumes run by run); the wall time of the whole process is measured.
The table goes to `<sweep>/RESULTS.md` and a bar plot to `<sweep>/accuracy.png`.
"""

import argparse
import importlib.util
import json
import pathlib
import shlex
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_sweep(folder: pathlib.Path):
  spec = importlib.util.spec_from_file_location("sweep", folder / "sweep.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


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


def run(cmd: list, workdir: pathlib.Path) -> dict:
  """Runs one launch.py process; returns results, run info and wall time."""
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  with open(workdir / "launch.log", "a") as log:
    subprocess.run(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                   check=True)
  wall = time.perf_counter() - start
  return {"wall_seconds": round(wall, 1),
          "results": json.loads((workdir / "results.json").read_text()),
          "run_info": json.loads((workdir / "run_info.json").read_text())}


def write_results(folder: pathlib.Path, records: dict) -> None:
  rows = ["| run | test accuracy | test macro F1 | validation accuracy | "
          "steps | wall time (s) | command |", "|---|---|---|---|---|---|---|"]
  for name, r in records.items():
    test, val = r["results"]["test"], r["results"]["validation"]
    rows.append(
        f"| {name} | {test['accuracy']:.4f} | {test['macro_f1']:.4f} | "
        f"{val['accuracy']:.4f} | {r['run_info']['steps']} | "
        f"{r['wall_seconds']:.0f} | `{r['command']}` |")
  (folder / "results.json").write_text(json.dumps(records, indent=2) + "\n")
  table = "\n".join(rows)
  text = (folder / "RESULTS.md").read_text() if (
      folder / "RESULTS.md").exists() else ""
  marker_start, marker_end = "<!-- table -->", "<!-- /table -->"
  block = f"{marker_start}\n{table}\n{marker_end}"
  if marker_start in text:
    head, rest = text.split(marker_start, 1)
    text = head + block + rest.split(marker_end, 1)[1]
  else:
    text = f"# Results\n\n{block}\n"
  (folder / "RESULTS.md").write_text(text)
  plot(folder / "accuracy.png", records)


def plot(path: pathlib.Path, records: dict) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = list(records)
  acc = [records[n]["results"]["test"]["accuracy"] for n in names]
  fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1))
  ax.barh(names, acc, color="tab:blue")
  ax.invert_yaxis()
  ax.set_xlim(min(acc) - 0.02, 1.0)
  ax.set_xlabel("test accuracy")
  for i, a in enumerate(acc):
    ax.text(a, i, f" {a:.4f}", va="center", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("sweep", type=pathlib.Path, help="sweep folder")
  parser.add_argument("--workdir", type=pathlib.Path, default=None,
                      help="root of the runs' workdirs (default runs/<sweep>)")
  parser.add_argument("--only", action="append", default=None,
                      help="run only these run names (repeatable)")
  args = parser.parse_args()
  sweep = load_sweep(args.sweep)
  root = args.workdir or REPO_ROOT / "runs" / args.sweep.resolve().name
  results_file = args.sweep / "results.json"
  records = json.loads(results_file.read_text()) if results_file.exists() else {}
  for name, overrides in sweep.RUNS.items():
    if args.only and name not in args.only:
      continue
    workdir = root / name
    cmd = command(sweep.CONFIG, workdir, overrides)
    print(f"[{name}] {display(cmd)}", flush=True)
    record = run(cmd, workdir)
    record["command"] = display(cmd).replace(
        str(root), f"runs/{args.sweep.resolve().name}")
    records[name] = record
    print(f"[{name}] test accuracy {record['results']['test']['accuracy']:.4f}"
          f" in {record['wall_seconds']:.0f} s", flush=True)
    write_results(args.sweep, {n: records[n] for n in sweep.RUNS if n in records})


if __name__ == "__main__":
  main()
