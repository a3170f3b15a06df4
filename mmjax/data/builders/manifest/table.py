"""Reading and checking a manifest table (CSV or JSON lines): its columns,
its rows and the file line each row starts on (see the package docstring for
the format). The files a row names are not opened here (see `media`)."""

import csv
import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from mmjax.data.builders.base import PathLike
from mmjax.data.errors import DataError

MODALITIES = ("image", "audio", "text", "video")
LABEL = "label"
SPLIT = "split"
SPLITS = ("train", "validation", "test")
COLUMNS = MODALITIES + (LABEL, SPLIT)
FILE_MODALITIES = ("image", "audio", "video")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".json")
_EXPECTED = (
    "a .csv file with a header row, or a .jsonl file with one JSON object "
    "per line; columns: a `label` (the class name), at least one of "
    "`image` (a file path), `audio` (a file path), `text` (the text) and "
    "`video` (a file or frame folder path), and optionally `split` "
    "(train/validation/test)")


@dataclasses.dataclass(frozen=True)
class Row:
  """One example of a manifest.

  Attributes:
    number: the 1-based data row (the header is not a row).
    line: the 1-based line of the file where the row starts.
    values: `{column: value}` for every column of the manifest ("" when
      empty: for a modality, the row lacks it); file paths as written in
      the manifest.
  """
  number: int
  line: int
  values: Dict[str, str]


@dataclasses.dataclass(frozen=True)
class Manifest:
  """A parsed, checked manifest.

  Attributes:
    path: the manifest file (absolute).
    columns: its columns, in file order.
    rows: its rows, in file order (at least one).
  """
  path: Path
  columns: Tuple[str, ...]
  rows: Tuple[Row, ...]

  @property
  def modalities(self) -> Tuple[str, ...]:
    """The modality columns, in `MODALITIES` order."""
    return tuple(m for m in MODALITIES if m in self.columns)

  def has(self, row: Row, modality: str) -> bool:
    """Whether `row` fills the column of `modality` (an empty cell, or a
    missing or null JSON key, is a missing modality)."""
    return bool(row.values.get(modality, "").strip())

  @property
  def incomplete(self) -> Tuple[str, ...]:
    """The modality columns empty in at least one row, in `MODALITIES`
    order."""
    return tuple(m for m in self.modalities
                 if not all(self.has(r, m) for r in self.rows))

  @property
  def labels(self) -> Tuple[str, ...]:
    """The distinct labels, sorted: the ClassLabel names."""
    return tuple(sorted({row.values[LABEL] for row in self.rows}))

  def where(self, row: Row, column: Optional[str] = None) -> str:
    """`"<manifest>, line L (row R)[, column C]"`, for error messages."""
    text = f"{self.path}, line {row.line} (row {row.number})"
    return f"{text}, column {column}" if column else text

  def file(self, row: Row, column: str) -> Path:
    """The file named by `row`'s `column`, relative to the manifest's
    folder unless absolute."""
    return self.path.parent / Path(row.values[column]).expanduser()


def _cell(value) -> str:
  """A JSON value as a manifest field (None -> "")."""
  if value is None:
    return ""
  if isinstance(value, (dict, list)):
    raise TypeError(f"expected a string, got {json.dumps(value)[:60]}")
  return value if isinstance(value, str) else json.dumps(value)


def _read_csv(path: Path) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
  """(columns, [(line, {column: value})]) of a CSV file with a header."""
  with path.open(newline="", encoding="utf-8-sig") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
      raise DataError(f"{path}: the manifest is empty; expected {_EXPECTED}.")
    columns = [c.strip() for c in header]
    records = []
    line = reader.line_num + 1
    for values in reader:
      if any(v.strip() for v in values):
        if len(values) != len(columns):
          raise DataError(
              f"{path}, line {line}: {len(values)} fields, but the header "
              f"has {len(columns)} ({', '.join(columns)}).")
        records.append((line, dict(zip(columns, values))))
      line = reader.line_num + 1  # A quoted field may span several lines.
  return columns, records


def _read_jsonl(path: Path
                ) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
  """(columns in first-seen order, [(line, {column: value})])."""
  columns: Dict[str, None] = {}
  records = []
  with path.open(encoding="utf-8-sig") as f:
    for line, text in enumerate(f, start=1):
      if not text.strip():
        continue
      try:
        obj = json.loads(text)
        if not isinstance(obj, dict):
          raise TypeError("not a JSON object")
        values = {str(k).strip(): _cell(v) for k, v in obj.items()}
      except (json.JSONDecodeError, TypeError) as e:
        raise DataError(f"{path}, line {line}: not a JSON object of string "
                        f"fields ({e}); expected {_EXPECTED}.") from e
      columns.update(dict.fromkeys(values))
      records.append((line, values))
  return list(columns), records


def _check_columns(path: Path, columns: Sequence[str]) -> None:
  unknown = [c for c in columns if c not in COLUMNS]
  if unknown:
    raise DataError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}"
                    f"; allowed columns: {', '.join(COLUMNS)}.")
  if LABEL not in columns:
    raise DataError(f"{path}: no `label` column; expected {_EXPECTED}.")
  if not any(m in columns for m in MODALITIES):
    raise DataError(f"{path}: no modality column; expected {_EXPECTED}.")


def lines_of(rows: Sequence[Row], limit: int = 10) -> str:
  """`"7 (row 6), 9 (row 8) and 3 more"`: where `rows` are, for errors."""
  text = ", ".join(f"{r.line} (row {r.number})" for r in rows[:limit])
  return text + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _check_some_modality(manifest: Manifest) -> None:
  empty = [r for r in manifest.rows
           if not any(manifest.has(r, m) for m in manifest.modalities)]
  if empty:
    raise DataError(
        f"{manifest.path}: no modality ({', '.join(manifest.modalities)}) "
        f"at line(s) {lines_of(empty)}; an empty cell is a missing modality, "
        f"but every row needs at least one. Fill one in or remove these "
        f"rows.")


def _check_row(manifest: Manifest, row: Row) -> None:
  for column in (LABEL, SPLIT):
    if column in manifest.columns and not row.values[column].strip():
      raise DataError(f"{manifest.where(row, column)}: empty field; every "
                      f"row needs a {column}.")
  split = row.values.get(SPLIT)
  if split is not None and split.strip() not in SPLITS:
    raise DataError(f"{manifest.where(row, SPLIT)}: unknown split "
                    f"{split!r}; expected one of {', '.join(SPLITS)}.")


def read_manifest(path: PathLike) -> Manifest:
  """Reads and checks a manifest (the files it names are not opened).

  Fields other than `text` are stripped of surrounding white space.

  Args:
    path: a `.csv`, `.jsonl` or `.json` manifest (see the module docstring).

  Returns:
    The `Manifest`, with at least one row.

  Raises:
    DataError: naming the manifest, for a missing or unreadable file, an
      unknown suffix, unknown columns, no label or modality column, no rows,
      a CSV row with the wrong number of fields, a JSON line that is not an
      object of scalars, an empty label or split field or an unknown split
      (these also name the line and row), or rows without any modality
      (naming their lines). An empty modality cell is not an error: that
      row lacks the modality (see `Manifest.has`).
  """
  path = Path(path).expanduser().resolve()
  if not path.is_file():
    raise DataError(f"{path}: no such manifest; expected {_EXPECTED}.")
  suffix = path.suffix.lower()
  if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
    raise DataError(f"{path}: unknown manifest type {suffix!r}; expected "
                    f"{_EXPECTED}.")
  try:
    columns, records = (_read_csv if suffix in CSV_SUFFIXES
                        else _read_jsonl)(path)
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise DataError(f"{path}: cannot read the manifest ({e}); expected "
                    f"{_EXPECTED}.") from e
  _check_columns(path, columns)
  if not records:
    raise DataError(f"{path}: the manifest has no rows; expected {_EXPECTED}.")
  rows = tuple(
      Row(number, line, {c: (values.get(c, "") if c == "text"
                             else values.get(c, "").strip()) for c in columns})
      for number, (line, values) in enumerate(records, start=1))
  manifest = Manifest(path, tuple(columns), rows)
  for row in rows:
    _check_row(manifest, row)
  _check_some_modality(manifest)
  return manifest
