"""Evaluating a train_state on whole splits and writing what it gives:
results.json and each evaluator's per-split files."""

from typing import Dict, Sequence

from etils import epath

from mmjax.evaluation.classification import SplitEvaluator
from mmjax.train import writers


def skipped_examples(builder) -> Dict[str, int]:
  """`{split: rows left out}` of a dataset prepared with bad examples
  skipped (`mmjax.data.builders.manifest.builder.BAD_EXAMPLES`), else {}."""
  listed = builder.info.metadata.get("skipped_examples") if (
      builder.info.metadata is not None) else None
  return {split: len(rows) for split, rows in (listed or {}).items()}


def modality_examples(builder) -> Dict[str, Dict[str, int]]:
  """`{split: {modality: examples having it}}` of a dataset that records
  it (`multimodal_manifest`: metadata `modality_examples`), else {}."""
  metadata = builder.info.metadata
  counts = metadata.get("modality_examples") if metadata is not None else None
  return {split: {m: int(n) for m, n in by_modality.items()}
          for split, by_modality in (counts or {}).items()}


def modality_examples_line(builder) -> str:
  """"Examples with each modality: train 480 (image 480, text 320), ...",
  or "" for a dataset that does not record them (`modality_examples`)."""
  counts = modality_examples(builder)
  splits = [s for s in counts if s in builder.info.splits]
  if not splits:
    return ""
  return "Examples with each modality: " + "; ".join(
      f"{s} {builder.info.splits[s].num_examples} (" + ", ".join(
          f"{m} {n}" for m, n in counts[s].items()) + ")" for s in splits) + "."


def evaluate_and_save(evaluator: SplitEvaluator, state, splits: Sequence[str],
                      out_dir: epath.PathLike, class_names: Sequence[str],
                      results_name: str = "results.json") -> Dict[str, Dict[str, float]]:
  """Evaluates `splits`, writes `<out_dir>/<results_name>` and per split
  what the evaluator saves (classification: `confusion_<split>.{png,json}`;
  contrastive: `zero_shot_confusion_<split>.{png,json}`); returns `{split:
  metrics}`, with `skipped_examples` (rows left out at preparation, see
  `skipped_examples`) when the dataset records them. `out_dir` may be
  remote (`gs://...`)."""
  out_dir = epath.Path(out_dir)
  skipped = skipped_examples(evaluator.builder)
  results = {}
  for split in splits:
    results[split], extra = evaluator.evaluate(state, split)
    evaluator.save(split, results[split], extra, out_dir, class_names)
    if skipped:
      results[split]["skipped_examples"] = skipped.get(split, 0)
  if writers.is_chief():
    writers.write_json_atomic(out_dir / results_name, results)
  return results
