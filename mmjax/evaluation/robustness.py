"""Robustness evaluation and intermodal analysis of a trained workdir.

`evaluate_robustness(config, workdir)` (launch.py --mode=robustness) scores
the latest checkpoint

- on every non-empty subset of the modalities (the others marked missing
  through the presence masks; an example of a dataset that lacks a modality
  keeps it missing, see `mmjax.data.pipeline`), on each of
  `config.eval_splits`;
- under each corruption of `mmjax.analysis.corruptions` whose modality the
  model has, at every level, on the test split (the last of
  `config.eval_splits`), with MultiBench's relative robustness and, given a
  reference workdir analysed the same way (e.g. late fusion), its effective
  robustness; next to each curve the same model's accuracy with the
  corrupted modality marked missing, whether the family is one the config
  trains with (`config.corruption_augmentation`) or held out, and issue
  32's target over the curves (`robustness_metrics.missing_modality_target`);
- and analyses the test split's representations: linear CKA between each
  modality's embedding and the fused embedding, a KSG mutual-information
  estimate between the modalities' embeddings, leave-one-modality-out
  accuracy deltas, and pictures of the learned gates, modality weights and
  attention maps of a few examples.

Everything goes to a new folder `<workdir>/robustness[-N]/`:
robustness.json, robustness.md, corruptions.png (per family: the model, the
model with the corrupted modality marked missing, the reference and the
single-modality runs given as `unimodal_workdirs`), intermediates_*.png.
Each curve of robustness.json's "corruptions" holds "levels", "unit",
"modality", "accuracy", "relative_robustness", "family_split" ("train" or
"heldout"), "missing_accuracy" (models of several modalities) and
"effective_robustness" (with a reference); "missing_modality_target" holds
the target and "unimodal" the single-modality runs' curves.
"""

import functools
import itertools
import json
import re
from typing import Dict, List, Optional, Sequence

from etils import epath
import jax
import ml_collections
import numpy as np

from mmjax import objectives, parallel, paths
from mmjax.analysis import corruptions as corruptions_lib
from mmjax.analysis import mutual_information, plots, robustness_metrics
from mmjax.analysis import similarity
from mmjax.evaluation import restore
from mmjax.train import steps, writers

NUM_PICTURED_EXAMPLES = 4


def modality_subsets(modalities: Sequence[str]) -> List[tuple]:
  """Every non-empty subset, largest first: ("image", "audio"), ("image",)..."""
  return [s for r in range(len(modalities), 0, -1)
          for s in itertools.combinations(modalities, r)]


def subset_name(subset: Sequence[str]) -> str:
  return "+".join(subset)


def _corrupt_fn(corruption: corruptions_lib.Corruption):
  """jitted `(rng, batch, level) -> batch` corrupting one modality; the
  level is traced (float32 scalar), so a sweep compiles once per family."""
  def corrupt(rng, batch, level):
    batch = dict(batch)
    batch[corruption.modality] = corruption.apply(
        rng, batch[corruption.modality], level)
    return batch
  return jax.jit(corrupt)


def selected_corruptions(corruptions: Optional[Sequence[str]],
                         modalities: Sequence[str]) -> List[str]:
  """The names of `corruptions` (None: all of `CORRUPTIONS`) that corrupt
  one of `modalities`, in `CORRUPTIONS`' order.

  Raises:
    ValueError: for a name not in `CORRUPTIONS` (the message lists them).
  """
  if corruptions is None:
    corruptions = tuple(corruptions_lib.CORRUPTIONS)
  unknown = sorted(set(corruptions) - set(corruptions_lib.CORRUPTIONS))
  if unknown:
    raise ValueError(f"unknown corruption(s) {unknown}; known: "
                     f"{sorted(corruptions_lib.CORRUPTIONS)}")
  return [name for name, c in corruptions_lib.CORRUPTIONS.items()
          if name in corruptions and c.modality in modalities]


def train_families(config: ml_collections.ConfigDict) -> frozenset:
  """The corruption families a recipe of `config` may train with.

  `config.corruption_augmentation.families`, the experiment's statement of
  its train-time families, whatever the probability (a recipe with
  probability 0, e.g. today's default, is scored on the same split as one
  that trains with them); none for configs without the key (recorded
  before it). Every other family is held out (evaluation only).
  """
  augmentation = config.get("corruption_augmentation")
  if augmentation is None:
    return frozenset()
  return frozenset(augmentation.get("families", ()))


def _single_modality(result: Dict, workdir) -> str:
  """The modality of a single-modality run's robustness.json."""
  subsets = result["modality_subsets_accuracy"][result["test_split"]]
  if len(subsets) != 1:
    raise ValueError(
        f"--unimodal_workdirs: {workdir} is a run of modalities "
        f"{sorted(subsets)}, not of a single modality")
  return next(iter(subsets))


def _capture(state, evaluator, split: str, dtype: str, limit: int):
  """Flattened "intermediates" (`{path: np [n, ...]}`) of the first `limit`
  examples of `split`, and their int labels `[n]`."""
  compute_dtype = jax.numpy.dtype(dtype)

  @jax.jit
  def forward(state, batch):
    inputs = {k: v for k, v in batch.items()
              if k not in ("mask", steps.PRESENT)}
    _, updates = state.apply_fn(
        state.variables(steps.cast_floating(state.params, compute_dtype)),
        steps.cast_floating(inputs, compute_dtype), batch.get(steps.PRESENT),
        train=False, mutable=["intermediates"])
    return steps.cast_floating(updates["intermediates"], jax.numpy.float32)

  collected: Dict[str, list] = {}
  labels, count = [], 0
  for local in evaluator.local_batches(split):
    inter = jax.device_get(forward(state, parallel.to_global(
        local, evaluator.mesh)))
    valid = local["mask"] > 0
    for path, value in _flatten(inter):
      collected.setdefault(path, []).append(np.asarray(value)[valid])
    labels.append(local["label"][valid])
    count += int(valid.sum())
    if count >= limit:
      break
  out = {k: np.concatenate(v)[:limit] for k, v in collected.items()}
  return out, np.concatenate(labels)[:limit]


def _flatten(tree, prefix=""):
  """(path, array) pairs of a sown-intermediates tree; sow stores tuples."""
  if isinstance(tree, (tuple, list)):
    for i, v in enumerate(tree):
      yield from _flatten(v, prefix if len(tree) == 1 else f"{prefix}[{i}]")
  elif hasattr(tree, "items"):
    for k, v in tree.items():
      yield from _flatten(v, f"{prefix}/{k}" if prefix else k)
  else:
    yield prefix, tree


def intermodal_analysis(intermediates: Dict[str, np.ndarray],
                        modalities: Sequence[str]) -> Dict[str, Dict[str, float]]:
  """CKA and mutual information between the modality and fused embeddings.

  Args:
    intermediates: flattened intermediates with `<m>_embedding` `[n, d_m]`
      for each modality and one path ending in `fused_embedding` `[n, d]`.
    modalities: the model's modalities.

  Returns:
    `{"cka": {"<a>~<b>": value}, "mutual_information_nats": {...}}`: linear
    CKA (Kornblith et al. 2019) of each modality with the fused embedding
    and between modalities; KSG mutual information (Kraskov et al. 2004) on
    8 PCA components between the modalities.
  """
  emb = {m: intermediates[f"{m}_embedding"] for m in modalities}
  fused = [v for k, v in intermediates.items() if k.endswith("fused_embedding")]
  cka, mi = {}, {}
  if fused:
    for m in modalities:
      cka[f"{m}~fused"] = similarity.linear_cka(emb[m], fused[0])
  for a, b in itertools.combinations(modalities, 2):
    cka[f"{a}~{b}"] = similarity.linear_cka(emb[a], emb[b])
    mi[f"{a}~{b}"] = mutual_information.representation_mutual_information(
        emb[a], emb[b])
  return {"cka": cka, "mutual_information_nats": mi}


def evaluate_robustness(config: ml_collections.ConfigDict,
                        workdir: epath.PathLike,
                        reference_workdir: Optional[epath.PathLike] = None,
                        corruptions: Optional[Sequence[str]] = None,
                        unimodal_workdirs: Sequence[epath.PathLike] = ()
                        ) -> epath.Path:
  """Runs the whole robustness evaluation of `workdir`'s latest checkpoint.

  Args:
    config: the run's experiment config.
    workdir: the trained run (local or e.g. `gs://...`, as every path here).
    reference_workdir: optional run already analysed by this function
      (its latest `robustness*/robustness.json` is read) whose curves are
      the reference of effective robustness, e.g. late fusion.
    corruptions: names in `mmjax.analysis.corruptions.CORRUPTIONS` to sweep
      (default all of the model's modalities; () for none).
    unimodal_workdirs: single-modality runs already analysed by this
      function (their latest `robustness*/robustness.json`, as for the
      reference), drawn in corruptions.png and tabled in robustness.md:
      their curve for the families of their modality, their clean accuracy
      (flat) for the others.

  Returns:
    The output folder.

  Raises:
    FileNotFoundError: when `workdir` has no checkpoint, or the reference
      or a unimodal workdir no robustness.json.
    ValueError: when the checkpoint does not match the config's model, for
      an unknown corruption name (the message lists the known ones), a
      unimodal workdir of more than one modality or analysed on another
      split than `config.eval_splits[-1]`, or for
      config.objective other than "classification" (every measure here is
      a classifier's accuracy).
  """
  objective = objectives.resolve(config)
  if objective.name != "classification":
    raise ValueError(
        f"--mode=robustness measures a classifier's accuracy under missing "
        f"modalities and corruptions; config.objective={objective.name!r} is "
        f"not supported (its evaluation is --mode=evaluate: retrieval and "
        f"zero-shot metrics)")
  workdir = epath.Path(workdir)
  modalities = tuple(config.modalities)
  corruptions = selected_corruptions(corruptions, modalities)
  reference = (load_latest_result(reference_workdir) if reference_workdir
               else None)
  test_split = config.eval_splits[-1]
  unimodal = {}
  for unimodal_workdir in unimodal_workdirs:
    loaded = load_latest_result(unimodal_workdir, "unimodal workdir")
    modality = _single_modality(loaded, unimodal_workdir)
    if loaded["test_split"] != test_split:
      raise ValueError(
          f"--unimodal_workdirs: {unimodal_workdir} was analysed on split "
          f"{loaded['test_split']!r}, this run on {test_split!r}")
    unimodal[f"{modality} only: {epath.Path(unimodal_workdir).name}"] = {
        "workdir": str(unimodal_workdir), "modality": modality,
        "clean_accuracy":
            loaded["modality_subsets_accuracy"][loaded["test_split"]][modality],
        "corruptions": {name: {k: c[k] for k in ("levels", "unit", "accuracy")}
                        for name, c in loaded["corruptions"].items()}}
  trained_with = train_families(config)
  _, state, manager, evaluator, step = restore.restore_for_evaluation(
      config, workdir, objective)
  manager.close()

  subsets = {}
  for split in config.eval_splits:
    subsets[split] = {}
    for subset in modality_subsets(modalities):
      present = {m: float(m in subset) for m in modalities}
      subsets[split][subset_name(subset)] = evaluator.evaluate(
          state, split, present)[0]["accuracy"]
  full = subsets[test_split][subset_name(modalities)]
  leave_one_out = {}
  if len(modalities) > 1:
    leave_one_out = {m: full - subsets[test_split][subset_name(
        [n for n in modalities if n != m])] for m in modalities}

  curves = {}
  for name in corruptions:
    corruption = corruptions_lib.CORRUPTIONS[name]
    corrupt = _corrupt_fn(corruption)
    accuracies = [full] + [
        evaluator.evaluate(state, test_split, corrupt=functools.partial(
            corrupt, level=np.float32(level)))[0]["accuracy"]
        for level in corruption.levels]
    curve = {"levels": list(corruption.sweep_levels), "unit": corruption.unit,
             "modality": corruption.modality, "accuracy": accuracies,
             "family_split": "train" if name in trained_with else "heldout",
             "relative_robustness": robustness_metrics.relative_robustness(
                 accuracies)}
    if len(modalities) > 1:
      curve["missing_accuracy"] = subsets[test_split][subset_name(
          [m for m in modalities if m != corruption.modality])]
    if reference and name in reference["corruptions"]:
      curve["effective_robustness"] = robustness_metrics.effective_robustness(
          accuracies, reference["corruptions"][name]["accuracy"])
    curves[name] = curve

  intermediates, labels = _capture(state, evaluator, test_split, config.dtype,
                                   limit=2000)
  analysis = intermodal_analysis(intermediates, modalities)
  analysis["leave_one_modality_out_accuracy_delta"] = leave_one_out

  out_dir = restore.new_output_dir(workdir / "robustness")
  result = {"checkpoint_step": step, "test_split": test_split,
            "modality_subsets_accuracy": subsets, "corruptions": curves,
            "missing_modality_target":
                robustness_metrics.missing_modality_target(curves),
            "intermodal": analysis,
            "reference_workdir": str(reference_workdir or ""),
            "unimodal": unimodal}
  if writers.is_chief():
    writers.write_json_atomic(out_dir / "robustness.json", result)
    paths.write_atomic(out_dir / "robustness.md", markdown(result))
    reference_curves = {}
    if reference:
      reference_curves = {
          f"reference: {epath.Path(reference_workdir).name}":
              reference["corruptions"]}
    plot_curves(workdir.name, result, out_dir / "corruptions.png",
                reference_curves)
    plots.intermediates_pictures(intermediates, labels, NUM_PICTURED_EXAMPLES,
                                 out_dir)
  return out_dir


def plot_curves(name: str, result: Dict, path: epath.PathLike,
                reference_curves: Optional[Dict] = None) -> Dict[str, list]:
  """corruptions.png of `result` (a robustness.json): per family the model
  `name`, the model with the corrupted modality marked missing (flat), the
  reference curves `{label: {family: curve}}` and the unimodal runs of
  result["unimodal"], for the families of `result`; held-out families marked
  in the titles. Returns
  `plots.corruption_curves`'s `{family: [line labels]}`."""
  curves = result["corruptions"]
  missing = f"{name}, corrupted modality marked missing"
  models = {name: curves}
  for label, reference in (reference_curves or {}).items():
    models[label] = {f: c for f, c in reference.items() if f in curves}
  flat = {missing: {f: c["missing_accuracy"] for f, c in curves.items()
                    if "missing_accuracy" in c}}
  for label, run in result.get("unimodal", {}).items():
    models[label] = {f: run["corruptions"][f] for f in curves
                     if f in run["corruptions"]}
    flat[label] = {f: run["clean_accuracy"] for f, c in curves.items()
                   if c.get("modality") != run["modality"]}
  return plots.corruption_curves(
      models, path, flat=flat, colors={missing: "C0", name: "C0"},
      heldout=[f for f, c in curves.items()
               if c.get("family_split") == "heldout"])


def _output_number(folder: epath.Path) -> int:
  """N of `robustness-N` (0 for `robustness`): later folders have larger N."""
  match = re.fullmatch(r".*-(\d+)", folder.name)
  return int(match.group(1)) if match else 0


def load_latest_result(reference_workdir: epath.PathLike,
                       what: str = "reference workdir") -> Dict:
  """The robustness.json of `reference_workdir`'s latest analysis by this
  module (`robustness[-N]/`).

  Raises:
    FileNotFoundError: when it has none (the message names it as `what`).
  """
  # Oldest first, by modification time (whole seconds on every epath
  # backend), then by the folder's number; the last one is read.
  found = sorted(epath.Path(reference_workdir).glob("robustness*/robustness.json"),
                 key=lambda p: (p.stat().mtime, _output_number(p.parent)))
  if not found:
    raise FileNotFoundError(
        f"no robustness*/robustness.json in {reference_workdir}: run "
        f"--mode=robustness on the {what} first")
  return json.loads(found[-1].read_text())


# The older name, still used by tests/train/test_remote_paths.py.
_load_reference = load_latest_result


def target_markdown(target: Dict) -> List[str]:
  """robustness.md's section on `robustness_metrics.missing_modality_target`."""
  lines = ["## Target: corrupted >= marked missing - "
           f"{100 * target['tolerance']:g} point(s)", "",
           "| families | cells met | worst cell (family, level: accuracy, "
           "marked missing, margin) |", "|---|---|---|"]
  for group in ("train", "heldout", "all"):
    t = target[group]
    if not t["cells"]:
      lines.append(f"| {group} | none | |")
      continue
    w = t["worst"]
    lines.append(f"| {group} | {t['met']} of {t['cells']} "
                 f"({t['fraction']:.1%}) | {w['family']}, {w['level']:g}: "
                 f"{w['accuracy']:.4f}, {w['missing_accuracy']:.4f}, "
                 f"{w['margin']:+.4f} |")
  return lines + [""]


def markdown(result: Dict) -> str:
  """robustness.md: the subset, corruption and intermodal tables."""
  lines = ["# Robustness", "", f"Checkpoint step {result['checkpoint_step']}.",
           "", "## Modality subsets (accuracy; others marked missing)", ""]
  splits = list(result["modality_subsets_accuracy"])
  names = list(result["modality_subsets_accuracy"][splits[0]])
  lines += ["| modalities | " + " | ".join(splits) + " |",
            "|---" * (len(splits) + 1) + "|"]
  for n in names:
    lines.append(f"| {n} | " + " | ".join(
        f"{result['modality_subsets_accuracy'][s][n]:.4f}" for s in splits) + " |")
  lines += ["", f"## Corruptions ({result['test_split']} accuracy)", ""]
  unimodal = result.get("unimodal", {})
  for name, c in result["corruptions"].items():
    extra = (f", effective robustness {c['effective_robustness']:+.4f}"
             if "effective_robustness" in c else "")
    split = {"train": "; trained with",
             "heldout": "; held out"}.get(c.get("family_split"), "")
    size = len(c["levels"])
    lines += [f"**{name}** ({c['unit']}{split}; relative robustness "
              f"{c['relative_robustness']:.4f}{extra})", "",
              "| model | " + " | ".join(str(l) for l in c["levels"]) + " |",
              "|---" * (size + 1) + "|",
              "| this model | " + " | ".join(
                  f"{a:.4f}" for a in c["accuracy"]) + " |"]
    if "missing_accuracy" in c:
      lines.append(f"| {c.get('modality', 'corrupted modality')} marked "
                   f"missing | " + " | ".join(
                       [f"{c['missing_accuracy']:.4f}"] * size) + " |")
    for label, run in unimodal.items():
      if name in run["corruptions"]:
        values = [f"{a:.4f}" for a in run["corruptions"][name]["accuracy"]]
      else:  # a corruption of the other modality leaves it as it is
        values = [f"{run['clean_accuracy']:.4f}"] * size
      lines.append(f"| {label} | " + " | ".join(values) + " |")
    lines.append("")
  target = result.get("missing_modality_target")
  if target and target["all"]["cells"]:
    lines += target_markdown(target)
  lines += ["## Intermodal analysis", ""]
  for key, values in result["intermodal"].items():
    lines.append(f"- {key}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
  return "\n".join(lines) + "\n"
