"""A model card per workdir (`<workdir>/model_card.md`), generated from the
run's config and the files training and evaluation wrote there.

Sections (after Mitchell et al. 2019, "Model Cards for Model Reporting"):
model, training, data and splits, metrics per split (`results.json`, and
`evaluations/*/results.json`, `robustness/robustness.json` when present),
intended use and known limits, and the export when there is one. Nothing
is typed in by hand: a figure missing from the workdir is said to be.
"""

import datetime
import json
import pathlib
import subprocess
from typing import Any, List, Mapping, Optional

from etils import epath
import ml_collections

from mmjax import paths
from mmjax.export import limits
from mmjax.train import writers

CARD_FILE = "model_card.md"


def mmjax_commit() -> str:
  """`git describe --always --dirty --tags` of the checkout this mmjax is
  imported from, or "unknown" (an installed copy, no git)."""
  package = pathlib.Path(__file__).resolve().parents[1]
  try:
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=package,
                         capture_output=True, text=True, timeout=30)
    if top.returncode or pathlib.Path(top.stdout.strip()) != package.parent:
      return "unknown"
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--tags"], cwd=package,
        capture_output=True, text=True, timeout=30)
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return described.stdout.strip() if described.returncode == 0 else "unknown"


def _read_json(path: epath.Path) -> Optional[Any]:
  return json.loads(path.read_text()) if path.exists() else None


def _value(v: Any) -> str:
  """A metric: floats to 4 decimals."""
  return f"{v:.4f}" if isinstance(v, float) else str(v)


def _setting(v: Any) -> str:
  """A config value as written in a config (JSON; strings bare)."""
  return v if isinstance(v, str) and v else json.dumps(v, default=str)


def metrics_table(results: Mapping[str, Mapping[str, Any]]) -> List[str]:
  """Markdown table lines: a row per split, a column per metric (numbers to
  4 decimals, as `{:.4f}`; counts as integers), `num_examples` last."""
  keys = sorted({k for m in results.values() for k in m
                 if isinstance(m[k], (int, float))} - {"num_examples"})
  keys += ["num_examples"] if any("num_examples" in m
                                  for m in results.values()) else []
  lines = ["| split | " + " | ".join(keys) + " |",
           "|---|" + "---|" * len(keys)]
  for split, m in results.items():
    lines.append(f"| {split} | " + " | ".join(
        _value(m[k]) if k in m else "—" for k in keys) + " |")
  return lines


def _module_line(block: Mapping[str, Any]) -> str:
  options = {k: v for k, v in block.items() if k != "name"}
  return f"`{block.get('name')}` " + ", ".join(
      f"{k}={_setting(v)}" for k, v in sorted(options.items()))


def _model_section(c: Mapping[str, Any], run_info: Optional[Mapping]) -> List[str]:
  model = c.get("model", {})
  lines = ["## Model", "",
           f"- Objective: {c.get('objective', 'classification')}",
           f"- Modalities: {', '.join(c.get('modalities', ()))}"]
  for m in c.get("modalities", ()):
    block = model.get("encoders", {}).get(m)
    lines.append(f"- Encoder `{m}`: " + (_module_line(block) if block else "—"))
  if "fusion" in model:
    lines.append(f"- Fusion: {_module_line(model['fusion'])}")
  if "num_classes" in model:
    lines.append(f"- Classes: {model['num_classes']}")
  lines.append("- Unimodal auxiliary heads: " + (
      "yes" if c.get("aux_loss_weight", 0.0) > 0 else "no"))
  lines.append("- Parameters: " + (
      f"{run_info['num_params']:,}" if run_info and "num_params" in run_info
      else "unknown (no run_info.json: training has not finished)"))
  lines.append(f"- Compute dtype: {c.get('dtype', 'float32')} "
               "(parameters float32)")
  return lines


def _training_section(c: Mapping[str, Any], run_info: Optional[Mapping],
                      launches: List[Mapping]) -> List[str]:
  opt = c.get("optimizer", {})
  lines = ["## Training", "",
           f"- Steps: {c.get('num_train_steps')}, global batch size "
           f"{c.get('batch_size')}, seed {c.get('seed')}",
           f"- Optimizer: {opt.get('name')}, learning rate "
           f"{opt.get('learning_rate')}, schedule {opt.get('schedule')}",
           f"- Modality dropout: {_setting(c.get('modality_dropout', {}))}; "
           f"auxiliary loss weight {c.get('aux_loss_weight', 0.0)}"]
  if launches:
    lines.append(f"- Trained: {launches[0].get('time')} to "
                 f"{launches[-1].get('time')} ({len(launches)} launch(es))")
  if run_info:
    lines.append(f"- Train time: {run_info.get('train_seconds')} s on "
                 f"{run_info.get('devices')} {run_info.get('platform')} "
                 f"device(s), jax {run_info.get('jax')}")
  return lines


def _data_section(c: Mapping[str, Any], results: Optional[Mapping]) -> List[str]:
  data = {k: v for k, v in c.get("data", {}).items()
          if k not in ("manual_dir", "data_dir")}
  lines = ["## Data and splits", "",
           f"- Dataset: `{data.pop('name', '?')}`, " + ", ".join(
               f"{k}={_setting(v)}" for k, v in sorted(data.items()))]
  if results:
    lines.append("- Examples per evaluated split: " + ", ".join(
        f"{s} {m.get('num_examples', '?')}" for s, m in results.items()))
  for name in ("pp_eval", "pp_train"):
    for m, spec in c.get(name, {}).items():
      lines.append(f"- `{name}.{m}`: `{spec}`")
  return lines


def _metrics_section(workdir: epath.Path, results: Optional[Mapping]) -> List[str]:
  lines = ["## Metrics", ""]
  if not results:
    return lines + ["No results.json: the run has not finished training."]
  lines += ["From `results.json` (the last checkpoint):", "",
            *metrics_table(results)]
  evaluations = workdir / "evaluations"
  for folder in sorted(evaluations.iterdir()) if evaluations.exists() else ():
    other = _read_json(folder / "results.json")
    if other:
      source = _read_json(folder / "source.json") or {}
      lines += ["", f"`evaluations/{folder.name}` (dataset "
                f"{source.get('dataset', '?')}, manual_dir "
                f"{source.get('manual_dir') or 'default'}, step "
                f"{source.get('checkpoint_step', '?')}):", "",
                *metrics_table(other)]
  robustness = _read_json(workdir / "robustness" / "robustness.json")
  if robustness and "modality_subsets_accuracy" in robustness:
    lines += ["", "Accuracy with only these modalities present "
              "(`robustness/robustness.json`):", ""]
    for split, subsets in robustness["modality_subsets_accuracy"].items():
      lines.append(f"- {split}: " + ", ".join(
          f"{s} {v:.4f}" for s, v in subsets.items()))
  return lines


def card_text(config: Mapping[str, Any], workdir: epath.PathLike,
              now: Optional[datetime.datetime] = None) -> str:
  """The model card of `workdir` as Markdown (see `write_model_card`);
  `config` is the experiment config as a dict, `now` the date written."""
  workdir = epath.Path(workdir)
  now = now or datetime.datetime.now(datetime.timezone.utc)
  results = _read_json(workdir / "results.json")
  run_info = _read_json(workdir / "run_info.json")
  launches_file = workdir / "launches.jsonl"
  launches = [json.loads(l) for l in launches_file.read_text().splitlines()
              if l.strip()] if launches_file.exists() else []
  signature = _read_json(workdir / "export" / "signature.json")
  lines = [f"# Model card: {workdir.name}", "",
           f"Generated {now.strftime('%Y-%m-%d %H:%M UTC')} by "
           f"`mmjax.export.model_card.write_model_card` from `{workdir}`; "
           f"mmjax commit {mmjax_commit()}.", "",
           *_model_section(config, run_info), "",
           *_training_section(config, run_info, launches), "",
           *_data_section(config, results), "",
           *_metrics_section(workdir, results), "",
           *limits.limits_section(config, results, workdir)]
  if signature:
    lines += ["", "## Export", "",
              f"`export/` (checkpoint step {signature['checkpoint_step']}): "
              "`*.jax_export` (jax.export), `saved_model/` (TF SavedModel), "
              "`signature.json`; inputs " + ", ".join(
                  f"`{i['name']}` {i['dtype']}{i['shape']}" for i in
                  signature["entry_points"]["serving_default"]["inputs"])
              + "."]
  return "\n".join(lines) + "\n"


def write_model_card(config: ml_collections.ConfigDict,
                     workdir: epath.PathLike) -> epath.Path:
  """Writes `<workdir>/model_card.md` (replacing it) and returns its path.

  Reads `config` (the run's experiment config) and, from `workdir`,
  `results.json`, `run_info.json`, `launches.jsonl`, `evaluations/*/`,
  `robustness/robustness.json` and `export/signature.json` where they
  exist; the card says which are missing. Call it after training, an
  evaluation or an export; with several processes only process 0 writes.
  """
  workdir = epath.Path(workdir)
  as_dict = config.to_dict() if isinstance(
      config, ml_collections.ConfigDict) else dict(config)
  path = workdir / CARD_FILE
  if writers.is_chief():
    paths.write_atomic(path, card_text(as_dict, workdir))
  return path

