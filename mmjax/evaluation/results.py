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
