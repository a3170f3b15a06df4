"""Where a sweep's launch.py runs execute (experiments/run_sweep.py
--executor): one after another on this machine (`run_local`), N at once on
this machine each pinned to its own devices (`run_parallel`), or as a SLURM
job array through submitit (`run_slurm`).

Every executor calls `on_done(name, record_or_error)` in the calling thread
as each run ends, and starts a run only after the runs it names (a `{runs}`
path in its overrides, e.g. `init_from`) have finished (`dependencies`).
"""

import ast
import concurrent.futures
import json
import os
import pathlib
import queue
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import cloudpickle
import submitit

EXIT_PREEMPTED = 75  # launch.py's status after saving on SIGTERM: rerun resumes
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The submitit cluster of `run_slurm`; tests use submitit's "local" one.
SLURM_CLUSTER = "slurm"
SLURM_POLL_S = 30.0  # between looks at the jobs' states (sacct)
# The job processes unpickle `SlurmRun` without experiments/ on their path.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Todo(NamedTuple):
  """One run to execute: its name, launch.py command and workdir."""
  name: str
  cmd: List[str]
  workdir: pathlib.Path


def read_record(workdir: pathlib.Path, seconds: float) -> dict:
  """A finished run's record: its results.json, run_info.json, wall time."""
  return {"wall_seconds": round(seconds, 1),
          "results": json.loads((workdir / "results.json").read_text()),
          "run_info": json.loads((workdir / "run_info.json").read_text())}


def start(cmd: List[str], workdir: pathlib.Path, env: Optional[dict] = None,
          cpus: Optional[Sequence[int]] = None) -> subprocess.Popen:
  """Starts `cmd` in the repository root, output appended to
  `<workdir>/launch.log`, with `env` added to this process's environment
  and, with `cpus`, its CPU affinity set to those cores (set right after
  the start, before Python has imported anything: JAX reads it)."""
  workdir.mkdir(parents=True, exist_ok=True)
  with open(workdir / "launch.log", "a") as log:
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
  if cpus is not None:
    os.sched_setaffinity(proc.pid, [int(c) for c in cpus])
  return proc


def wait(proc: subprocess.Popen) -> int:
  """`proc`'s exit status. Waits with `os.waitpid`, not `Popen.wait`, whose
  lock is not re-entrant: submitit's signal handler (`SlurmRun.checkpoint`)
  waits for the same process while the job waits here."""
  while proc.returncode is None:
    try:
      _, status = os.waitpid(proc.pid, 0)
    except ChildProcessError:  # reaped by the handler, which set returncode
      break
    proc.returncode = os.waitstatus_to_exitcode(status)
  return proc.returncode


def run_local(cmd: List[str], workdir: pathlib.Path, env: Optional[dict] = None,
              cpus: Optional[Sequence[int]] = None) -> dict:
  """Runs one launch.py process on this machine; returns its record.

  Raises:
    subprocess.CalledProcessError: when the run fails (its log is in
      `<workdir>/launch.log`).
  """
  begin = time.perf_counter()
  status = wait(start(cmd, workdir, env, cpus))
  if status:
    raise subprocess.CalledProcessError(status, cmd)
  return read_record(workdir, time.perf_counter() - begin)


def dependencies(todo: Sequence[Todo], root: pathlib.Path) -> Dict[str, set]:
  """`{name: names of the other runs whose workdir its command names}`."""
  names = {o.name: re.compile(re.escape(str(root / o.name)) + r"(?![\w.-])")
           for o in todo}
  return {t.name: {o for o, path in names.items() if o != t.name and any(
      path.search(a) for a in t.cmd)} for t in todo}


def _schedule(todo: Sequence[Todo], root: pathlib.Path, submit, on_done,
              poll_s: float) -> None:
  """Submits each run once its dependencies are done (`submit(list of Todo)`
  -> handles with done() and result()), calls `on_done` as runs end; a run
  whose dependency failed is reported failed, not started."""
  deps, pending, running, failed = dependencies(todo, root), list(todo), {}, set()
  while pending or running:
    while any(deps[t.name] & failed for t in pending):
      t = next(t for t in pending if deps[t.name] & failed)
      pending.remove(t)
      failed.add(t.name)
      on_done(t.name, RuntimeError(f"not run: {sorted(deps[t.name] & failed)} "
                                   "failed"))
    blocked = {t.name for t in pending} | set(running)
    ready = [t for t in pending if not deps[t.name] & blocked]
    if pending and not ready and not running:
      raise ValueError("runs that name each other: "
                       f"{sorted(t.name for t in pending)}")
    if ready:
      running.update(zip((t.name for t in ready), submit(ready)))
      pending = [t for t in pending if t not in ready]
    for name in [n for n, h in running.items() if h.done()]:
      try:
        record = running.pop(name).result()
      except Exception as e:  # pylint: disable=broad-except
        failed.add(name)
        record = e
      on_done(name, record)
    time.sleep(poll_s if running else 0)


# --executor local --parallel N

def visible_devices(pin: str) -> List[str]:
  """The ids `pin` divides: CUDA_VISIBLE_DEVICES (else nvidia-smi's GPUs)
  for "cuda", the cores of this process's affinity for "cpu"."""
  if pin == "cpu":
    return [str(c) for c in sorted(os.sched_getaffinity(0))]
  if os.environ.get("CUDA_VISIBLE_DEVICES"):
    return os.environ["CUDA_VISIBLE_DEVICES"].split(",")
  if not shutil.which("nvidia-smi"):
    return []
  out = subprocess.run(["nvidia-smi", "--query-gpu=index",
                        "--format=csv,noheader"], capture_output=True,
                       text=True, check=False).stdout
  return out.split()


def device_groups(parallel: Optional[int], devices: Optional[List[str]],
                  pin: str = "auto"):
  """`(pin, groups)`: what a group pins ("cuda", "cpu" or "none") and one
  group of device ids per slot. `devices` gives the groups ("0,1"); else
  the visible ids (`visible_devices`) are split into `parallel` equal
  contiguous groups. "auto" is "cuda" where GPUs are visible, else "cpu".

  Raises:
    ValueError: when there are fewer ids than slots, or `parallel` differs
      from the number of `devices` groups.
  """
  if pin == "auto":
    pin = "cuda" if visible_devices("cuda") else "cpu"
  if devices:
    groups = [d.split(",") for d in devices]
    if parallel not in (None, len(groups)):
      raise ValueError(f"--parallel {parallel} but {len(groups)} --devices "
                       "groups")
    return pin, groups
  parallel = parallel or 1
  if pin == "none":
    return pin, [[] for _ in range(parallel)]
  ids = visible_devices(pin)
  if len(ids) < parallel:
    raise ValueError(f"--parallel {parallel} needs at least {parallel} "
                     f"{pin} devices; visible: {ids}")
  per = len(ids) // parallel
  return pin, [ids[i * per:(i + 1) * per] for i in range(parallel)]


def pinning(pin: str, group: List[str]) -> dict:
  """`run_local` keyword arguments that pin a run to `group`."""
  if pin == "cuda":
    return {"env": {"CUDA_VISIBLE_DEVICES": ",".join(group)}}
  if pin == "cpu":
    return {"cpus": group}
  return {}


def run_parallel(todo: Sequence[Todo], root: pathlib.Path, pin: str,
                 groups: List[List[str]], on_done: Callable,
                 run: Callable = run_local) -> None:
  """Runs `todo` len(groups) at a time, each on a free group of devices:
  on GPU its CUDA_VISIBLE_DEVICES, on CPU its cores (CPU affinity, from
  which launch.py's default --cpu_devices follows), with "none" no
  pinning."""
  free = queue.Queue()
  for g in groups:
    free.put(g)

  def one(t: Todo) -> dict:
    group = free.get()
    try:
      return run(t.cmd, t.workdir, **pinning(pin, group))
    finally:
      free.put(group)

  with concurrent.futures.ThreadPoolExecutor(len(groups)) as pool:
    _schedule(todo, root, lambda ready: [pool.submit(one, t) for t in ready],
              on_done, poll_s=0.2)


# --executor slurm

class SlurmRun(submitit.helpers.Checkpointable):
  """One launch.py run as a submitit job; requeued on preemption.

  On submitit's preemption/timeout signal (USR2 before the job's end,
  `checkpoint`) the run gets SIGTERM, saves its checkpoint and exits; on
  exit status 75 (launch.py preempted by a SIGTERM of the scheduler), or
  death by SIGTERM (one that came before the train loop, which saves
  nothing), the job raises that signal itself. Either way submitit stores this object and
  requeues the job, which runs the same command again: launch.py resumes
  from the checkpoint. Several tasks (nodes or tasks_per_node > 1) join one
  `--jax_distributed` run; task 0 returns the record.
  """

  def __init__(self, cmd: List[str], workdir: pathlib.Path):
    self.cmd, self.workdir = cmd, workdir
    self.seconds = 0.0  # over every attempt
    self._proc, self._begin = None, 0.0

  def __call__(self) -> Optional[dict]:
    env = submitit.JobEnvironment()
    cmd = self.cmd + ["--jax_distributed"] * (env.num_tasks > 1)
    self._begin = time.perf_counter()
    self._proc = start(cmd, self.workdir)
    status = wait(self._proc)
    self.seconds += time.perf_counter() - self._begin
    if status in (EXIT_PREEMPTED, -signal.SIGTERM):  # SIGTERM before saving
      if env.global_rank:
        return None  # task 0 requeues the whole job
      signal.raise_signal(env._usr_sig())  # pylint: disable=protected-access
    if status:
      raise subprocess.CalledProcessError(status, cmd)
    return read_record(self.workdir, self.seconds) if (
        env.global_rank == 0) else None

  def checkpoint(self) -> submitit.helpers.DelayedSubmission:
    if self._proc is not None and self._proc.returncode is None:
      self._proc.send_signal(signal.SIGTERM)
      wait(self._proc)
      self.seconds += time.perf_counter() - self._begin
    return submitit.helpers.DelayedSubmission(self)

  def __getstate__(self):
    return {**self.__dict__, "_proc": None}


def slurm_parameters(pairs: Sequence[str]) -> dict:
  """`["partition=gpu", "timeout_min=240"]` -> submitit AutoExecutor
  parameters: its shared names (timeout_min, nodes, tasks_per_node,
  gpus_per_node, cpus_per_task, mem_gb, name) as given, any other SLURM
  parameter of submitit (partition, account, qos, constraint,
  array_parallelism, ...) prefixed `slurm_`; values read as Python
  literals where they parse, else strings.

  Raises:
    ValueError: for a pair without `=`, or without timeout_min (submitit's
      default, 5 minutes, is never what a run needs).
  """
  params = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep:
      raise ValueError(f"--slurm {pair!r}: expected KEY=VALUE")
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass
    shared = key in submitit.AutoExecutor._typed_parameters()  # pylint: disable=protected-access
    params[key if shared else f"slurm_{key}"] = value
  if "timeout_min" not in params:
    raise ValueError("--executor slurm needs --slurm timeout_min=MINUTES "
                     "(a job's time limit; a run still going then is "
                     "requeued from its checkpoint, up to 3 times)")
  return params


class _Job:
  """A submitit job as `_schedule` polls it."""

  def __init__(self, job):
    self.job = job

  def done(self) -> bool:
    return self.job.done()

  def result(self):
    try:
      return self.job.results()[0]  # task 0's record
    except Exception as e:  # pylint: disable=broad-except
      raise RuntimeError(f"job {self.job.job_id} failed; see "
                         f"{self.job.paths.stderr}") from e


def run_slurm(todo: Sequence[Todo], root: pathlib.Path, params: dict,
              on_done: Callable) -> None:
  """Submits `todo` as SLURM job arrays (one array per wave of runs whose
  dependencies are done), submitit's files and logs in `<root>/slurm/<job
  id>/`, launch.py's in `<workdir>/launch.log`, and waits for them."""
  executor = submitit.AutoExecutor(folder=root / "slurm" / "%j",
                                   cluster=SLURM_CLUSTER)
  executor.update_parameters(**{"name": root.name, **params})

  def submit(ready):
    with executor.batch():
      jobs = [executor.submit(SlurmRun(t.cmd, t.workdir)) for t in ready]
    for t, j in zip(ready, jobs):
      print(f"[{t.name}] job {j.job_id}", flush=True)
    return [_Job(j) for j in jobs]

  _schedule(todo, root, submit, on_done, SLURM_POLL_S)
