"""Orbax checkpointing of the train_state: save every N steps, keep the last K,
resume from the latest.

The input's position: with the in-memory shuffle it is a function of the
restored step (`mmjax.data.pipeline.train_batches` skips to it); streaming
input saves its tf.data iterator with each checkpoint instead, as a second
item of the step folder (`mmjax.data.input_checkpoint`), restored in
constant time.

Directories may be local or on GCS (`gs://...`): Orbax takes them as
`etils.epath` paths (its array data go through TensorStore, which writes
local folders and `gs://` only).
"""

from typing import Any, Dict, Optional, Tuple, TypeVar

from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp

from mmjax import paths
from mmjax.data import input_checkpoint

State = TypeVar("State")


def make_manager(directory: epath.PathLike, *, keep: int,
                 read_only: bool = False) -> ocp.CheckpointManager:
  """An asynchronous `ocp.CheckpointManager` over `directory` (made absolute
  when local).

  Args:
    directory: where step folders `<step>/` are written (atomically: a
      checkpoint interrupted while being written is never restored); a
      local path or a `gs://` URI.
    keep: number of most recent checkpoints kept; older ones are deleted.
    read_only: open existing checkpoints without creating or deleting any.
  """
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=not read_only, read_only=read_only,
      enable_async_checkpointing=True)
  return ocp.CheckpointManager(paths.absolute(directory), options=options,
                               item_names=ITEMS)


def has_checkpoints(directory: epath.PathLike) -> bool:
  """Whether `directory` holds a finished checkpoint (a `<step>/` folder;
  Orbax writes into a temporary name and renames when done), without
  creating anything."""
  directory = epath.Path(directory)
  return directory.is_dir() and any(
      p.name.isdigit() and p.is_dir() for p in directory.iterdir())


# Items of a step folder: the train_state ("default", the name Orbax gives a
# single item, so checkpoints from before the input item still restore) and,
# for streaming input, the input's position (`mmjax.data.input_checkpoint`).
ITEMS = ("default", "input")


def save(manager: ocp.CheckpointManager, state,
         input_position: Optional[input_checkpoint.InputSave] = None,
         metadata: Optional[Dict[str, Any]] = None) -> None:
  """Starts saving `state` under its step (asynchronously, in the
  background), and `input_position` with it when given (written before
  this returns); `metadata` (JSON-able) becomes the step's custom metadata
  (`step_metadata`)."""
  step = int(jax.device_get(state.step))
  items = {"default": ocp.args.StandardSave(state)}
  if input_position is not None:
    items["input"] = input_position
  manager.save(step, args=ocp.args.Composite(**items), force=True,
               custom_metadata=metadata)


def step_metadata(manager: ocp.CheckpointManager, step: int) -> Dict[str, Any]:
  """The custom metadata saved with checkpoint `step` ({} when none)."""
  return dict(manager.metadata(step).custom_metadata or {})


def has_input_position(manager: ocp.CheckpointManager, step: int) -> bool:
  """Whether the checkpoint of `step` holds the input's position."""
  return (epath.Path(manager.directory) / str(step) / "input").is_dir()


def restore_input_position(manager: ocp.CheckpointManager, step: int,
                           iterator) -> Optional[list]:
  """Restores the tf.data `iterator` in place to its position at `step`.

  Returns:
    The batches it had produced that training had not consumed yet (to be
    yielded first), or None when the checkpoint has no input position for
    this process (then `iterator` is untouched).
  """
  if not has_input_position(manager, step):
    return None
  restored = manager.restore(step, args=ocp.args.Composite(
      input=input_checkpoint.InputRestore(iterator)))
  return restored["input"]


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
  return manager.restore(step, args=ocp.args.Composite(
      default=ocp.args.StandardRestore(abstract)))["default"]


def restore_latest_model(manager: ocp.CheckpointManager, target: State) -> Optional[State]:
  """Restores only the step, parameters and batch statistics of the latest
  checkpoint onto `target` (an Orbax partial restore), for evaluation: the
  optimizer state is not read, so a config with another optimizer or
  gradient clipping still evaluates the checkpoint.

  Returns:
    `target` with `step`, `params` and `batch_stats` restored, or None when
    there is no checkpoint.
  """
  step = manager.latest_step()
  if step is None:
    return None
  model = {"step": target.step, "params": target.params,
           "batch_stats": target.batch_stats}
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, model)
  restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
  restored = manager.restore(step, args=ocp.args.Composite(
      default=ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args,
                                     partial_restore=True)))["default"]
  return target.replace(**restored)


def restore_latest_tree(directory: epath.PathLike) -> Tuple[int, Dict[str, Any]]:
  """The latest checkpoint in `directory` (local or `gs://`) as saved,
  without a target: a nested dict of numpy arrays (`{"params": ...,
  "batch_stats": ..., ...}`).

  Used to take parts of another run (e.g. one encoder); the run's own
  resume uses `restore_latest` with the full train_state as target.

  Returns:
    (step, tree).

  Raises:
    FileNotFoundError: when `directory` holds no finished checkpoint.
  """
  directory = paths.absolute(directory)
  if not directory.is_dir():
    raise FileNotFoundError(f"no checkpoint directory {directory}")
  manager = make_manager(directory, keep=1, read_only=True)
  step = manager.latest_step()
  manager.close()
  if step is None:
    raise FileNotFoundError(f"no finished checkpoint in {directory}")
  item = manager.directory / str(step) / "default"
  with ocp.StandardCheckpointer() as checkpointer:
    metadata = checkpointer.metadata(item).item_metadata
    # Onto this process's first device, whatever mesh the run was saved on.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
        metadata.tree)
    tree = checkpointer.restore(item, abstract)
  return step, jax.tree.map(np.asarray, tree)
