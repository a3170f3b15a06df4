"""Helpers shared by the manifest tests: writing manifests and reading a
prepared builder back."""

import json
from pathlib import Path

import tensorflow_datasets as tfds

from mmjax.data.errors import DataError

RATE = 8000
LABELS = ("cat", "dog", "owl")


def write_csv(path: Path, header, rows) -> Path:
  """Writes a CSV manifest with Python's csv module (quoting as needed)."""
  import csv  # pylint: disable=g-import-not-at-top
  with path.open("w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return path


def write_jsonl(path: Path, rows) -> Path:
  path.write_text("".join(json.dumps(r) + "\n" for r in rows),
                  encoding="utf-8")
  return path


def read_all(builder) -> dict:
  """`{row number: (split, numpy example)}` of every split."""
  return {int(ex["row"]): (split, ex)
          for split in builder.info.splits
          for ex in tfds.as_numpy(builder.as_dataset(split=split))}


def label_manifest(tmp_path: Path, per_label: int = 10) -> Path:
  rows = [("x", LABELS[i % 3]) for i in range(3 * per_label)]
  return write_csv(tmp_path / "labels.csv", ["text", "label"], rows)


def assert_names(error: DataError, *parts) -> None:
  message = str(error)
  for part in parts:
    assert str(part) in message, f"{part!r} not in {message!r}"
