"""`--mode=predict` and `--mode=embed` of launch.py: a manifest of new raw
inputs through a trained workdir, into `W/predictions/<time>/` or
`W/embeddings/<time>/`.

predictions/<time>/
  predictions.jsonl   one record per manifest row (`Predictor.predict`),
                      with the row's manifest `line`
  results.json        with labels: the metrics `--mode=evaluate` reports
                      (`{"manifest": {...}}`: classifier accuracy, macro
                      precision / recall / F1, loss, num_examples;
                      contrastive: the zero-shot ones) and, for a
                      contrastive model whose rows pair both modalities,
                      the retrieval figures; `num_errors`
  confusion_manifest.{png,json} (zero_shot_confusion_manifest.* for a
                      contrastive model), as evaluation writes them
  source.json         checkpoint, manifest, options
embeddings/<time>/
  embeddings_<modality>.npy   float32 [n_m, embed_dim], L2-normalised
  index.jsonl         one line per manifest row: its line, input, and for
                      each modality the row of its vector in the .npy
                      (null when missing), or its error
  retrieval.json      with rows pairing both modalities
"""

import json
import time
from typing import Any, Dict, List, Optional, Sequence

from etils import epath
import ml_collections
import numpy as np

from mmjax.data.errors import DataError
from mmjax.evaluation import restore
from mmjax.predict import rows as rows_lib
from mmjax.predict.predictor import Predictor
from mmjax.train import metrics, writers

MODES = ("predict", "embed")
SPLIT = "manifest"  # the "split" name of the metrics and confusion files


def read_class_names(path: epath.PathLike) -> List[str]:
  """The class names of a file, one per line (blank lines skipped).

  Raises:
    DataError: for a missing file or fewer than 2 names.
  """
  path = epath.Path(path)
  if not path.exists():
    raise DataError(f"{path}: no such class-name file (one class name per "
                    f"line)")
  names = [line.strip() for line in path.read_text().splitlines()
           if line.strip()]
  if len(names) < 2:
    raise DataError(f"{path}: {len(names)} class names; zero-shot "
                    f"classification needs at least 2, one per line")
  return names


def _write_jsonl(path: epath.Path, records: Sequence[Dict[str, Any]]) -> None:
  path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                          for r in records))


def _labels(manifest, records, names: Sequence[str], skip_bad_rows: bool):
  """(record indices, label indices) of the records with a label, no
  error; an unknown label raises (or, skipping bad rows, becomes the
  record's error)."""
  if "label" not in manifest.columns:
    return [], []
  kept, labels = [], []
  for k, record in enumerate(records):
    row = manifest.rows[record["row"]]
    label = row.values["label"]
    if "error" in record or not label:
      continue
    if label not in names:
      message = (f"{manifest.where(row, 'label')}: unknown label {label!r}; "
                 f"the model's classes are {', '.join(names[:20])}"
                 f"{', ...' if len(names) > 20 else ''}")
      if not skip_bad_rows:
        raise DataError(message)
      records[k] = {"row": record["row"], "input": record["input"],
                    "error": message}
      continue
    kept.append(k)
    labels.append(names.index(label))
  return kept, labels


def _classifier_metrics(records, kept, labels, names) -> Dict[str, float]:
  confusion = np.zeros((len(names), len(names)), np.float64)
  losses = []
  for k, label in zip(kept, labels):
    top = records[k]["top_k"]
    predicted = names.index(top[0]["label"])
    confusion[label, predicted] += 1
    given = {t["label"]: t["probability"] for t in top}
    losses.append(-np.log(max(given.get(names[label], 0.0), 1e-30)))
  result = metrics.classification_metrics(confusion)
  result["loss"] = float(np.mean(losses))
  return result, confusion


def _predictor(config: ml_collections.ConfigDict,
               workdir: epath.Path) -> Predictor:
  """The workdir's latest checkpoint; or, for a workdir with none yet and a
  config that names a pretrained CLIP (`config.model.init_from`), that CLIP
  with no training."""
  if (not (workdir / "checkpoints").is_dir() and config.get("model")
      and config.model.get("init_from")):
    return Predictor.from_pretrained_clip(config)
  return Predictor.from_workdir(workdir, config=config,
                                allow_config_change=True)


def predict_to_dir(config: ml_collections.ConfigDict, workdir: epath.PathLike,
                   manifest_path: epath.PathLike, *, top_k: int = 5,
                   skip_bad_rows: bool = False,
                   zero_shot_classes: Optional[epath.PathLike] = None
                   ) -> epath.Path:
  """`--mode=predict`: see the module docstring.

  Args:
    config: the run's config (launch.py has checked it against the run's).
    workdir: the trained run.
    manifest_path: a CSV or JSONL manifest; relative paths against its
      folder; `label` optional.
    top_k: labels per record (metrics use all classes).
    skip_bad_rows: record unreadable rows as errors instead of stopping.
    zero_shot_classes: a contrastive run's class-name file (default: the
      dataset's classes).

  Returns:
    The folder written.

  Raises:
    DataError: naming the line, column and file of a bad row (unless
      skip_bad_rows), or a bad manifest or class-name file.
    ValueError: for zero_shot_classes with a classifier run.
  """
  workdir = epath.Path(workdir)
  manifest = rows_lib.read(manifest_path)
  predictor = _predictor(config, workdir)
  if zero_shot_classes and not predictor.contrastive:
    raise ValueError("--zero_shot_classes is for contrastive runs "
                     "(config.objective='contrastive'); a classifier "
                     "predicts its own classes")
  names = (read_class_names(zero_shot_classes) if zero_shot_classes
           else predictor.class_names)
  if names is None:
    raise ValueError("a pretrained CLIP has no classes of its own: give "
                     "--zero_shot_classes=FILE (class names, one per line)")
  labelled = "label" in manifest.columns
  every = len(names) if labelled else top_k  # metrics need every class
  embedded = None
  if predictor.contrastive:
    embedded = predictor.embed(manifest, skip_bad_rows=skip_bad_rows)
    records = predictor.zero_shot(manifest, class_names=names, top_k=every,
                                  skip_bad_rows=skip_bad_rows,
                                  embedded=embedded)
  else:
    records = predictor.predict(manifest, top_k=every,
                                skip_bad_rows=skip_bad_rows)
  kept, labels = _labels(manifest, records, names, skip_bad_rows)
  out_dir = restore.new_output_dir(
      workdir / "predictions" / time.strftime("%Y%m%d-%H%M%S"))
  results = {}
  if kept:
    if predictor.contrastive:
      confusion = np.zeros((len(names), len(names)), np.float64)
      for k, label in zip(kept, labels):
        confusion[label, names.index(records[k]["top_k"][0]["label"])] += 1
      scores = metrics.classification_metrics(confusion)
      results = {f"zero_shot_{k}": v for k, v in scores.items()
                 if k != "num_examples"}
      results["num_examples"] = len(kept)
      stem, what = f"zero_shot_confusion_{SPLIT}", "zero-shot accuracy"
    else:
      results, confusion = _classifier_metrics(records, kept, labels, names)
      stem, what = f"confusion_{SPLIT}", "accuracy"
    accuracy = results.get("accuracy", results.get("zero_shot_accuracy"))
    writers.save_confusion_matrix(confusion, out_dir / stem, names,
                                  title=f"{SPLIT}: {what} {accuracy:.4f}")
  if predictor.contrastive and all(m in manifest.columns
                                   for m in predictor.modalities):
    try:
      results.update(predictor.retrieval(manifest, embedded=embedded))
    except ValueError:  # fewer than 2 pairs: nothing to rank
      pass
  for record in records:
    record["line"] = manifest.rows[record["row"]].line
    if "top_k" in record:
      record["top_k"] = record["top_k"][:top_k]
    for m, top in record.get("modalities", {}).items():
      record["modalities"][m] = top[:top_k]
  _write_jsonl(out_dir / "predictions.jsonl", records)
  if results:
    results["num_errors"] = sum("error" in r for r in records)
    writers.write_json_atomic(out_dir / "results.json", {SPLIT: results})
  writers.write_json_atomic(out_dir / "source.json", {
      "manifest": str(manifest.path), "top_k": top_k,
      "skip_bad_rows": skip_bad_rows, "class_names": names,
      "zero_shot_classes": str(zero_shot_classes or "")})
  return out_dir


def embed_to_dir(config: ml_collections.ConfigDict, workdir: epath.PathLike,
                 manifest_path: epath.PathLike, *,
                 skip_bad_rows: bool = False) -> epath.Path:
  """`--mode=embed` (contrastive runs): see the module docstring.

  Raises:
    ValueError: for a classifier run.
    DataError: as `predict_to_dir`.
  """
  workdir = epath.Path(workdir)
  manifest = rows_lib.read(manifest_path)
  predictor = _predictor(config, workdir)
  embedded = predictor.embed(manifest, skip_bad_rows=skip_bad_rows)
  out_dir = restore.new_output_dir(
      workdir / "embeddings" / time.strftime("%Y%m%d-%H%M%S"))
  position = {m: {int(i): k for k, i in enumerate(embedded.rows[m])}
              for m in predictor.modalities}
  index = []
  for i, row in enumerate(manifest.rows):
    entry = {"row": i, "line": row.line, "input": dict(row.values)}
    if i in embedded.errors:
      entry["error"] = embedded.errors[i]
    else:
      entry.update({m: position[m].get(i) for m in predictor.modalities})
    index.append(entry)
  for m, vectors in embedded.vectors.items():
    with (out_dir / f"embeddings_{m}.npy").open("wb") as f:
      np.save(f, vectors.astype(np.float32))
  _write_jsonl(out_dir / "index.jsonl", index)
  try:
    figures = predictor.retrieval(manifest, embedded=embedded)
    writers.write_json_atomic(out_dir / "retrieval.json", {SPLIT: figures})
  except ValueError:  # fewer than 2 pairs
    pass
  return out_dir


def run(mode: str, config: ml_collections.ConfigDict, workdir: epath.PathLike,
        manifest_path: Optional[str], *, top_k: int = 5,
        skip_bad_rows: bool = False,
        zero_shot_classes: Optional[str] = None) -> epath.Path:
  """launch.py's `--mode=predict` / `embed`: the folder written.

  Raises:
    ValueError: without `--predict_manifest`, or for an unknown mode.
  """
  if not manifest_path:
    raise ValueError(f"--mode={mode} needs --predict_manifest=PATH (a CSV or "
                     f"JSONL manifest of the new inputs)")
  if mode == "predict":
    return predict_to_dir(config, workdir, manifest_path, top_k=top_k,
                          skip_bad_rows=skip_bad_rows,
                          zero_shot_classes=zero_shot_classes)
  if mode == "embed":
    return embed_to_dir(config, workdir, manifest_path,
                        skip_bad_rows=skip_bad_rows)
  raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
