"""Multi-host initialisation, the device mesh and data-parallel shardings.

The global batch is split along the mesh axis `data` over every device of
every process; parameters and optimizer state are replicated, or sharded
over a second axis `fsdp` (`make_mesh(fsdp)`, `mmjax.sharding`). The same code
runs on 1 CPU, 8 forced host devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`), one GPU, several
processes joined by `jax.distributed`, or a TPU pod.
"""

import collections
import itertools
import os
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Tuple

import jax
from jax.experimental import mesh_utils
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"  # parameters sharded over it: mmjax.sharding


def initialize_distributed(enabled: bool = False,
                           coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> None:
  """Joins a multi-process JAX job when asked to, before any JAX computation.

  Runs `jax.distributed.initialize` when `enabled`, when a coordinator
  address is given, or when `JAX_COORDINATOR_ADDRESS` is set; arguments left
  as None are auto-detected by JAX on SLURM, Open MPI, Cloud TPU and GKE.
  Otherwise the run is a single process.

  Processes on the CPU backend (e.g. several local processes, see
  scripts/local_processes.py) need a cross-process collectives
  implementation, `jax_cpu_collectives_implementation`: when it is unset
  (None) it is set to "gloo" (TCP, through the coordinator; "mpi" is kept
  when chosen). GPU and TPU backends use their own collectives; the setting
  only concerns the CPU client. Each process exposes its own
  `jax_num_cpu_devices` (`configure_cpu_devices`) as local devices.
  """
  if not (enabled or coordinator_address or
          os.environ.get("JAX_COORDINATOR_ADDRESS")):
    return
  if num_processes != 1 and jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


# CPU devices per available core that `configure_cpu_devices` aims for: the
# fastest count measured (benchmarks/RESULTS.md, "Notes moved out of code").
CPU_DEVICES_PER_CORE = 2


def _available_cores() -> int:
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def default_cpu_device_count(global_batch_sizes: Sequence[int],
                             num_processes: int = 1,
                             cores: Optional[int] = None) -> int:
  """The CPU device count `configure_cpu_devices` picks when none is given.

  The largest n <= `CPU_DEVICES_PER_CORE` * `cores` such that n *
  `num_processes` divides every global batch size (at least 1).

  Args:
    global_batch_sizes: the batch sizes the run will shard (train, eval).
    num_processes: processes of the run, each exposing n devices.
    cores: cores available to this process; default: its CPU affinity
      (`os.sched_getaffinity`, which follows `taskset` and cpusets), or
      `os.cpu_count()` where the platform has no affinity call (macOS).

  Returns:
    The device count per process, >= 1.
  """
  if cores is None:
    cores = _available_cores()
  for n in range(max(1, CPU_DEVICES_PER_CORE * cores), 0, -1):
    if all(b % (n * num_processes) == 0 for b in global_batch_sizes):
      return n
  return 1


_TERMINATE_FLAG = "xla_cpu_collective_call_terminate_timeout_seconds"


def configure_cpu_devices(count: Optional[int],
                          global_batch_sizes: Sequence[int],
                          num_processes: int = 1) -> int:
  """Sets how many devices the CPU platform exposes (`jax_num_cpu_devices`).

  XLA:CPU runs one device's step on about one core; with several CPU
  devices the data-parallel step runs their batch shards concurrently, the
  same global batch and the same arithmetic up to float32 reduction order
  (the default count, `CPU_DEVICES_PER_CORE`, is the fastest measured:
  benchmarks/RESULTS.md, "Notes moved out of code").
  Has no effect on GPU or TPU backends (their devices are used, not the
  CPU's) and must run before JAX initialises its backends (it may run
  before `initialize_distributed`: each process of a multi-process run
  exposes `count` local devices). With more than
  one device it also raises XLA:CPU's collective termination timeout to an
  hour (unless XLA_FLAGS sets it), so a busy machine slows a run down
  instead of aborting it.

  Args:
    count: devices to expose (per process); None picks
      `default_cpu_device_count(global_batch_sizes, num_processes)`.
    global_batch_sizes: the batch sizes the run will shard (train, eval).
    num_processes: processes of the run, each exposing `count` devices.

  Returns:
    The count set, or 0 when it was left alone because XLA_FLAGS already
    sets `--xla_force_host_platform_device_count`.

  Raises:
    ValueError: for a count < 1.
    RuntimeError: when JAX's backends are already initialised.
  """
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return 0
  if count is None:
    count = default_cpu_device_count(global_batch_sizes, num_processes)
  if count < 1:
    raise ValueError(f"the CPU device count must be >= 1, got {count}")
  jax.config.update("jax_num_cpu_devices", count)
  if count > 1 and _TERMINATE_FLAG not in os.environ.get("XLA_FLAGS", ""):
    # XLA:CPU aborts the process when a device thread reaches a collective
    # more than 40 s after the others, which happens on a heavily
    # oversubscribed machine (seen with 8 devices on 2 busy cores).
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --{_TERMINATE_FLAG}=3600").strip()
  return count


def device_grid(shape: Tuple[int, ...],
                devices: Optional[Sequence[Any]] = None) -> np.ndarray:
  """`devices` (default: all) arranged as a mesh of `shape` (`data` first).

  On a multi-slice TPU (devices of several `slice_index`es), the `data`
  axis spans the slices: each slice holds a contiguous block of it, and
  every other axis (`fsdp`) stays inside a slice, so only the data-parallel
  gradient reduction crosses the slower data-center network
  (`mesh_utils.create_hybrid_device_mesh`). Otherwise the devices in
  `jax.make_mesh`'s order for the platform.

  Raises:
    ValueError: when the slices do not divide the `data` axis.
  """
  devices = list(jax.devices() if devices is None else devices)
  slices = sorted({getattr(d, "slice_index", 0) for d in devices})
  if len(slices) == 1:
    return mesh_utils.create_device_mesh(shape, devices)
  if shape[0] % len(slices):
    raise ValueError(f"the data axis ({shape[0]} devices) must be a multiple "
                     f"of the number of TPU slices, {len(slices)}")
  per_slice = (shape[0] // len(slices), *shape[1:])
  dcn = (len(slices),) + (1,) * (len(shape) - 1)
  return mesh_utils.create_hybrid_device_mesh(per_slice, dcn, devices)


def make_mesh(fsdp: int = 1) -> Mesh:
  """`data` (1-D, all devices) when `fsdp == 1`, else `data x fsdp`
  (`device_grid`: multi-slice TPUs put the slices along `data`).

  Axes are of type Auto (compiler-propagated shardings, as in GSPMD): jax
  >= 0.7 defaults `jax.make_mesh` to Explicit axes, which would make every
  layer annotate shardings.

  Raises:
    ValueError: when the device count is not a multiple of `fsdp`
      (naming config.sharding.fsdp).
  """
  n = jax.device_count()
  if fsdp < 1 or n % fsdp:
    raise ValueError(f"config.sharding.fsdp={fsdp} must be >= 1 and divide "
                     f"the device count, {n}")
  shape, names = ((n,), (DATA_AXIS,)) if fsdp == 1 else (
      (n // fsdp, fsdp), (DATA_AXIS, FSDP_AXIS))
  return Mesh(device_grid(shape), names,
              axis_types=(AxisType.Auto,) * len(shape))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of batch arrays `[global_batch, ...]` along their first axis,
  split over every mesh axis (`data`, and `fsdp` when parameters are
  sharded, see mmjax.sharding)."""
  return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy on every device (parameters, metrics)."""
  return NamedSharding(mesh, PartitionSpec())


def local_batch_size(global_batch_size: int) -> int:
  """The per-process share of the global batch size.

  Raises:
    ValueError: if the global batch size is not divisible by the number of
      devices (hence of processes).
  """
  if global_batch_size % jax.device_count():
    raise ValueError(
        f"config.batch_size={global_batch_size} (global batch size) must be "
        f"divisible by the number of devices, {jax.device_count()}")
  return global_batch_size // jax.process_count()


def padded_batch_size(global_batch_size: int) -> int:
  """`global_batch_size` rounded up to a multiple of the device count: the
  evaluation batch, whose padding examples (mask 0) fill the last device
  (evaluation needs no exact batch size, unlike training)."""
  devices = jax.device_count()
  return -(-global_batch_size // devices) * devices


def to_global(batch: Mapping[str, np.ndarray], mesh: Mesh) -> Any:
  """Assembles each process's local batch into global arrays.

  Args:
    batch: `{name: [local_batch, ...]}` numpy arrays of this process.
    mesh: the device mesh.

  Returns:
    `{name: jax.Array [global_batch, ...]}` sharded along `data`.
  """
  sharding = data_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


class DevicePrefetcher:
  """Yields `to_global(batch, mesh)` for each batch, `size` batches ahead.

  Host-to-device transfers are asynchronous in JAX: starting the transfer
  of the next batches before the current step is consumed overlaps the
  copy with the step's computation (as `flax.jax_utils.prefetch_to_device`,
  for sharded global arrays). `pending()` gives the host batches taken from
  `batches` but not yielded yet, which a checkpoint of the input position
  must hold (`mmjax.data.input_checkpoint`).
  """

  def __init__(self, batches: Iterable[Mapping[str, np.ndarray]], mesh: Mesh,
               size: int = 2):
    self._batches, self._mesh = iter(batches), mesh
    self._queue = collections.deque()  # (host batch, global batch)
    self._enqueue(size)

  def _enqueue(self, n: int) -> None:
    for batch in itertools.islice(self._batches, n):
      self._queue.append((batch, to_global(batch, self._mesh)))

  def __iter__(self) -> Iterator[Any]:
    return self

  def __next__(self) -> Any:
    if not self._queue:
      raise StopIteration
    _, batch = self._queue.popleft()
    self._enqueue(1)
    return batch

  def pending(self) -> list:
    """The host batches taken from the source and not yielded yet, in order."""
    return [host for host, _ in self._queue]
