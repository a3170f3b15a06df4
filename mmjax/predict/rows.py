"""The rows to predict on: a manifest file (CSV or JSON lines, the
`multimodal_manifest` format with `label` optional and empty modality cells
allowed) or a list of dicts, as the `Manifest` / `Row` objects that the
manifest builder's decoders (`mmjax.data.builders.manifest.media`) take, so
that their errors name the line (or row index), column and file."""

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from mmjax.data.builders.base import PathLike
from mmjax.data.builders.manifest import table
from mmjax.data.builders.manifest.table import Manifest, Row
from mmjax.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class RowList(Manifest):
  """Rows given in Python (`Predictor.predict(rows)`): `path` is a
  placeholder in `base_dir`, against which relative file paths resolve;
  a row is named by its index in the list (`rows[i]`, `Row.number - 1`)."""

  def where(self, row: Row, column: Optional[str] = None) -> str:
    text = f"rows[{row.number - 1}]"
    return f"{text}, column {column}" if column else text


def _cell(value: Any) -> str:
  """A row's value as a manifest field: None -> "", numbers as JSON."""
  if value is None:
    return ""
  return value if isinstance(value, str) else json.dumps(value)


def _check_columns(where: str, columns: Sequence[str]) -> None:
  unknown = [c for c in columns if c not in table.COLUMNS]
  if unknown:
    raise DataError(f"{where}: unknown column(s) "
                    f"{', '.join(map(repr, unknown))}; allowed columns: "
                    f"{', '.join(table.COLUMNS)}.")
  if not any(m in columns for m in table.MODALITIES):
    raise DataError(f"{where}: no modality column; expected at least one of "
                    f"{', '.join(table.MODALITIES)} (file paths, or the "
                    f"text).")


def _strip(columns: Sequence[str], values: Mapping[str, str]):
  """Every column's field ("" when absent), stripped except the text."""
  return {c: (values.get(c, "") if c == "text" else values.get(c, "").strip())
          for c in columns}


def from_dicts(rows: Sequence[Mapping[str, Any]],
               base_dir: Optional[PathLike] = None) -> RowList:
  """`rows` (dicts with `image`, `audio`, `text`, `video`, optional `label`
  and `split`) as a `RowList`; relative paths resolve against `base_dir`
  (default: the current folder).

  Raises:
    DataError: for no rows, a row that is not a dict, unknown keys or no
      modality key.
  """
  if not rows:
    raise DataError("no rows to predict on")
  columns = {}
  for i, row in enumerate(rows):
    if not isinstance(row, Mapping):
      raise DataError(f"rows[{i}]: expected a dict of columns, got "
                      f"{type(row).__name__}")
    columns.update(dict.fromkeys(str(k) for k in row))
  _check_columns("rows", list(columns))
  base = Path(base_dir or ".").expanduser().resolve()
  return RowList(base / "<rows>", tuple(columns), tuple(
      Row(i + 1, i + 1, _strip(columns, {str(k): _cell(v)
                                         for k, v in row.items()}))
      for i, row in enumerate(rows)))


def read(path: PathLike) -> Manifest:
  """A manifest file's rows for prediction: like
  `table.read_manifest` (CSV with a header, or JSON lines; relative paths
  against the manifest's folder), but `label` is optional and an empty
  modality field is a missing modality, not an error.

  Raises:
    DataError: naming the manifest (and line) for a missing or unreadable
      file, an unknown suffix, unknown columns, no modality column, no rows,
      or a malformed line.
  """
  path = Path(path).expanduser().resolve()
  if not path.is_file():
    raise DataError(f"{path}: no such manifest; expected a .csv or .jsonl "
                    f"file of rows (the multimodal_manifest format).")
  suffix = path.suffix.lower()
  if suffix not in table.CSV_SUFFIXES + table.JSONL_SUFFIXES:
    raise DataError(f"{path}: unknown manifest type {suffix!r}; expected "
                    f".csv, .jsonl or .json.")
  reader = table._read_csv if suffix in table.CSV_SUFFIXES else table._read_jsonl  # pylint: disable=protected-access
  try:
    columns, records = reader(path)
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise DataError(f"{path}: cannot read the manifest ({e}).") from e
  _check_columns(str(path), columns)
  if not records:
    raise DataError(f"{path}: the manifest has no rows.")
  return Manifest(path, tuple(columns), tuple(
      Row(number, line, _strip(columns, values))
      for number, (line, values) in enumerate(records, start=1)))


def present_columns(manifest: Manifest, row: Row) -> Sequence[str]:
  """The modality columns the row fills (a blank field is missing)."""
  return [m for m in table.MODALITIES
          if m in manifest.columns and row.values[m].strip()]
