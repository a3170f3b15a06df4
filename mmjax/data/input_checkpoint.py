"""The training input's position as an Orbax checkpoint item.

Saved with every checkpoint of a run whose input streams
(`config.input.shuffle_buffer_size > 0`), so that a resumed run continues
exactly where the saved one was, in constant time: no skipping through the
examples already trained on. Per process, under the item's folder:

- `process_<i>/iterator.*`: the tf.data iterator's state
  (`tf.train.Checkpoint(iterator=...)`: file offsets, the shuffle buffer's
  examples, the buffered batches);
- `process_<i>/pending.npz`: batches the iterator has already produced but
  the train loop has not consumed yet (in the device prefetch queue), which
  a resumed run yields first.

Orbax writes the item inside the step's folder and commits it atomically
with the train_state, so the two always match. The handler is synchronous:
the iterator's state is written before `CheckpointManager.save` returns,
before training moves the iterator on. The design follows Grain's
`PyGrainCheckpointHandler` (one file per process in the item folder).
"""

import dataclasses
import io
import os
from typing import Any, Dict, List, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
import tensorflow as tf
from etils import epath

Batch = Dict[str, np.ndarray]


def _process_dir(directory: epath.Path) -> epath.Path:
  return epath.Path(directory) / f"process_{jax.process_index()}"


class InputCheckpointHandler(ocp.CheckpointHandler):
  """Saves and restores a tf.data iterator and the pending host batches."""

  def save(self, directory: epath.Path, args: "InputSave") -> None:
    folder = _process_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(iterator=args.iterator).write(os.fspath(folder / "iterator"))
    buffer = io.BytesIO()
    np.savez(buffer, **{f"{i}/{k}": v for i, batch in enumerate(args.pending)
                        for k, v in batch.items()})
    (folder / "pending.npz").write_bytes(buffer.getvalue())

  def restore(self, directory: epath.Path,
              args: "InputRestore") -> Optional[List[Batch]]:
    """Restores `args.iterator` in place; returns the pending batches, or
    None when this process has no saved state (another process count)."""
    folder = _process_dir(directory)
    if not (folder / "pending.npz").exists():
      return None
    tf.train.Checkpoint(iterator=args.iterator).read(
        os.fspath(folder / "iterator")).assert_consumed()
    with np.load(io.BytesIO((folder / "pending.npz").read_bytes())) as saved:
      pending: Dict[int, Batch] = {}
      for name in saved.files:
        index, key = name.split("/", 1)
        pending.setdefault(int(index), {})[key] = saved[name]
    return [pending[i] for i in sorted(pending)]

  def metadata(self, directory: epath.Path) -> None:
    return None

  def close(self) -> None:
    pass


@ocp.args.register_with_handler(InputCheckpointHandler, for_save=True)
@dataclasses.dataclass
class InputSave(ocp.args.CheckpointArgs):
  """`iterator`: a `tf.data.Iterator`; `pending`: batches it produced that
  were not consumed yet, in order."""
  iterator: Any
  pending: List[Batch]


@ocp.args.register_with_handler(InputCheckpointHandler, for_restore=True)
@dataclasses.dataclass
class InputRestore(ocp.args.CheckpointArgs):
  """`iterator`: a `tf.data.Iterator` over the same pipeline as the saved
  one, restored in place."""
  iterator: Any
