"""The content fingerprint of a manifest and the files it names, which names
its prepared config directory."""

import hashlib
from pathlib import Path

from mmjax.data.builders.manifest import media
from mmjax.data.builders.manifest.table import FILE_MODALITIES
from mmjax.data.builders.manifest.table import Manifest
from mmjax.data.builders.manifest.video import frame_files


def _stat_line(name: str, path: Path) -> bytes:
  stat = path.stat()
  return f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode()


def fingerprint(manifest: Manifest, missing_ok: bool = False) -> str:
  """Content fingerprint of a manifest and the files it names.

  sha256 over the manifest's bytes and, for each distinct file it names (in
  row order; an empty cell names none), the path as written, its size in bytes and its modification
  time (ns), and so for each frame of a frame folder (`frame_files`):
  editing the manifest or touching a file changes it.

  Returns:
    16 lowercase hex characters.

  Raises:
    DataError: naming the row and file, for a file that does not exist
      (unless `missing_ok`: then its absence is part of the fingerprint).
  """
  digest = hashlib.sha256(manifest.path.read_bytes())
  seen = set()
  for row in manifest.rows:
    for column in FILE_MODALITIES:
      if (column not in manifest.columns or not manifest.has(row, column)
          or row.values[column] in seen):
        continue
      seen.add(row.values[column])
      path = manifest.file(row, column)
      try:
        digest.update(_stat_line(row.values[column], path))
        if column == "video" and path.is_dir():
          for frame in frame_files(path):
            digest.update(_stat_line(f"{row.values[column]}/{frame.name}",
                                     frame))
      except OSError as e:
        if not missing_ok:
          raise media.missing_file(manifest, row, column) from e
        digest.update(f"{row.values[column]}\tmissing\n".encode())
  return digest.hexdigest()[:16]
