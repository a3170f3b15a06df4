"""Synchronisation accuracy of a trained av_digit_clips run, per kind of clip.

  python experiments/modalities/clips/by_negative.py RUN_WORKDIR [--split test]

Prints and writes `<workdir>/sync_by_negative_<split>.json`: accuracy on the
synchronised clips, on the "shift" negatives (soundtrack in other time slots)
and on the "swap" negatives (same slots, the spoken digits exchanged), so a
model that only checks timing is told apart from one that matches content.
Predictions are aligned with the TFDS examples by position: the evaluation
pipeline reads the split in file order (one process).
"""

import argparse
import json
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))
from mmjax import objectives, parallel  # noqa: E402  pylint: disable=g-import-not-at-top
from mmjax.evaluation import restore  # noqa: E402  pylint: disable=g-import-not-at-top
import ml_collections  # noqa: E402  pylint: disable=g-import-not-at-top


def predictions(state, evaluator, split: str) -> np.ndarray:
  """int `[examples]` predicted classes of `split`, in file order."""

  @jax.jit
  def predict(state, batch):
    inputs = {k: v for k, v in batch.items() if k != "mask"}
    return state.apply_fn(state.variables(state.params), inputs,
                          train=False).argmax(-1)

  out = []
  for local in evaluator.local_batches(split):
    pred = jax.device_get(predict(state, parallel.to_global(
        local, evaluator.mesh)))
    out.append(np.asarray(pred)[local["mask"] > 0])
  return np.concatenate(out)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir", type=pathlib.Path)
  parser.add_argument("--split", default="test")
  args = parser.parse_args(argv)
  config = ml_collections.ConfigDict(
      json.loads((args.workdir / "config.json").read_text()))
  if config.data.get("task") != "sync":
    raise SystemExit(f"{args.workdir}: not a sync run (data.task="
                     f"{config.data.get('task')!r})")
  builder, state, manager, evaluator, step = restore.restore_for_evaluation(
      config, args.workdir, objectives.resolve(config))
  manager.close()
  predicted = predictions(state, evaluator, args.split)
  examples = builder.as_dataset(split=args.split, shuffle_files=False)
  kinds, labels = [], []
  for ex in examples.as_numpy_iterator():
    kinds.append(ex["negative"].decode() or "synchronized")
    labels.append(int(ex["label"]))
  kinds, labels = np.array(kinds), np.array(labels)
  if len(labels) != len(predicted):
    raise SystemExit(f"{len(predicted)} predictions for {len(labels)} examples")
  result = {"workdir": str(args.workdir), "split": args.split, "step": step,
            "accuracy": float((predicted == labels).mean())}
  for kind in ("synchronized", "shift", "swap"):
    chosen = kinds == kind
    result[kind] = {"accuracy": float((predicted[chosen] == labels[chosen])
                                      .mean()), "count": int(chosen.sum())}
  (args.workdir / f"sync_by_negative_{args.split}.json").write_text(
      json.dumps(result, indent=2) + "\n")
  print(json.dumps(result))


if __name__ == "__main__":
  main()
