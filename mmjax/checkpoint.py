"""Orbax checkpointing of the train_state: save every N steps, keep the last K,
resume from the latest.

The input pipeline needs no state of its own: its position is a function of
the restored step (see `mmjax.data.pipeline.train_batches`).
"""

import pathlib
from typing import Optional, TypeVar

import jax
import orbax.checkpoint as ocp

State = TypeVar("State")


def make_manager(directory: pathlib.Path, *, keep: int,
                 read_only: bool = False) -> ocp.CheckpointManager:
  """An asynchronous `ocp.CheckpointManager` over `directory` (absolute).

  Args:
    directory: where step folders `<step>/` are written (atomically: a
      checkpoint interrupted while being written is never restored).
    keep: number of most recent checkpoints kept; older ones are deleted.
    read_only: open existing checkpoints without creating or deleting any.
  """
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=not read_only, read_only=read_only,
      enable_async_checkpointing=True)
  return ocp.CheckpointManager(directory.absolute(), options=options)


def save(manager: ocp.CheckpointManager, state) -> None:
  """Starts saving `state` under its step (asynchronously, in the background)."""
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_latest(manager: ocp.CheckpointManager, target: State) -> Optional[State]:
  """Restores the latest checkpoint onto `target`'s structure and shardings.

  Args:
    manager: the checkpoint manager.
    target: a train_state with the expected tree, shapes, dtypes and
      shardings (its values are not used).

  Returns:
    The restored state, or None when there is no checkpoint.
  """
  step = manager.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract))
