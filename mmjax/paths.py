"""File operations on run outputs, local or remote (`gs://...`).

A workdir or output folder may be on an object store, so every file
operation on it goes through `etils.epath` (its `gs://` backend is
`tf.io.gfile` when TensorFlow is installed), never through `pathlib`,
`open`, `os` or `tempfile`: `pathlib.Path("gs://b/run")` is the local
relative path `gs:/b/run`.
"""

import io
import os
import uuid
from typing import Union

from etils import epath


def is_remote(path: epath.PathLike) -> bool:
  """Whether `path` is a URI (`gs://`, `s3://`, ...) rather than a local path."""
  return "://" in os.fspath(path)


def absolute(path: epath.PathLike) -> epath.Path:
  """`path` as an `epath.Path`, made absolute when it is local (a URI is
  already absolute; `Path.absolute()` would not be meaningful on it)."""
  path = epath.Path(path)
  return path if is_remote(path) else path.absolute()


def write_atomic(path: epath.PathLike, data: Union[bytes, str]) -> None:
  """Writes `data` to `path` through a uniquely named temporary file in the
  same folder, then a rename onto `path` (creating the folder).

  A reader never sees a half-written `path`: locally the rename is atomic;
  on an object store (GCS) a rename is a copy and a delete, and the final
  object is only created once the copy is complete.
  """
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
  try:
    if isinstance(data, str):
      tmp.write_text(data)
    else:
      tmp.write_bytes(data)
    tmp.replace(path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def append_text(path: epath.PathLike, text: str) -> None:
  """Appends `text` to `path` (created if missing).

  Locally an `open(path, "a")`. On GCS through TensorFlow's gfile (epath's
  `gs://` backend) appending rewrites the object: gfile reads it, and the
  whole content with `text` is uploaded on close, so the object is always
  either the old or the new content; fine for small logs like
  metrics.jsonl, linear in their size per call.
  """
  with epath.Path(path).open("a") as f:
    f.write(text)


def save_figure(fig, path: epath.PathLike, **savefig_kwargs) -> None:
  """Saves a matplotlib figure to `path` (the format from its suffix), via
  an in-memory buffer and `write_atomic`."""
  path = epath.Path(path)
  buffer = io.BytesIO()
  fig.savefig(buffer, format=path.suffix.lstrip(".") or None, **savefig_kwargs)
  write_atomic(path, buffer.getvalue())
