"""Kill-safe resume: a run killed at arbitrary points and restarted with the
same command must end with bitwise the same train_state as a run never
interrupted.

  python scripts/kill_resume_trials.py --root /tmp/kill_trials --kills 3 \
      -- --config configs/av_digits.py --config.num_train_steps=60 \
         --config.checkpoint_every_steps=5

What it does, all through `launch.py` subprocesses (the arguments after
`--`, plus `--workdir` and a shared `--compilation_cache_dir`):
1. the reference run, uninterrupted, in `<root>/reference`;
2. in `<root>/killed`: one SIGTERM at a random point (the run must save,
   exit with status 75 and resume from the step it saved), then `--kills`
   SIGKILLs, the first while an asynchronous Orbax checkpoint is being
   written (as soon as a temporary checkpoint folder appears), the others
   at random times during training (until --kills have landed); after each, every finished checkpoint must be readable
   and the next launch must resume from the latest of them (not an older,
   stale one); then a last launch runs to the end;
3. compares the final checkpoints' every array (parameters, optimizer
   state, statistics) and prints the trials, the resumes and the maximum
   difference, then one JSON line. Exit status 1 if they differ.
"""

import argparse
import collections
import json
import pathlib
import random
import signal
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def finished_steps(checkpoints: pathlib.Path):
  """Steps of the finished (renamed into place) checkpoints."""
  if not checkpoints.is_dir():
    return []
  return sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())


def writing(checkpoints: pathlib.Path) -> bool:
  """Whether a checkpoint is being written (Orbax's temporary folder)."""
  return checkpoints.is_dir() and any(
      "tmp" in p.name for p in checkpoints.iterdir())


def start(args, workdir: pathlib.Path, log):
  cmd = [sys.executable, "launch.py", *args, "--workdir", str(workdir)]
  return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log,
                          stderr=subprocess.STDOUT)


def run_to_end(args, workdir, log) -> float:
  t = time.perf_counter()
  rc = start(args, workdir, log).wait()
  if rc != 0:
    raise SystemExit(f"launch.py exited with {rc} in {workdir}; see {log.name}")
  return time.perf_counter() - t


def count_lines(path: pathlib.Path) -> int:
  return len(path.read_text().splitlines()) if path.exists() else 0


def interrupt(args, workdir, log, signum, *, delay, when, timeout=600.0):
  """Starts a launch and sends it `signum`: `when` is "write" (as soon as a
  checkpoint write is seen), "training" (`delay` s after the launch logs
  its first training metrics) or "time" (`delay` s after the start).

  Returns:
    (return code, whether the signal came during a checkpoint write).
  """
  checkpoints, metrics = workdir / "checkpoints", workdir / "metrics.jsonl"
  logged = count_lines(metrics)
  proc = start(args, workdir, log)
  t0, t_send, in_write = time.perf_counter(), None, False
  while proc.poll() is None and time.perf_counter() - t0 < timeout:
    now = time.perf_counter()
    if when == "write" and writing(checkpoints):
      in_write = True
      t_send = now
    elif when == "time":
      t_send = t0 + delay
    elif when == "training" and t_send is None and count_lines(metrics) > logged:
      t_send = now + delay
    if t_send is not None and now >= t_send:
      proc.send_signal(signum)
      break
    time.sleep(0.002 if when == "write" else 0.02)
  return proc.wait(), in_write


def compare(a: pathlib.Path, b: pathlib.Path):
  """(Maximum absolute difference over every array of two checkpoints'
  latest train_state, inf if the trees or shapes differ; `{top-level key:
  number of arrays}` of the first)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from mmjax import checkpoint  # pylint: disable=g-import-not-at-top
  step_a, tree_a = checkpoint.restore_latest_tree(a)
  step_b, tree_b = checkpoint.restore_latest_tree(b)
  counts = {k: len(jax.tree.leaves(v)) for k, v in tree_a.items()}
  leaves_a, def_a = jax.tree.flatten(tree_a)
  leaves_b, def_b = jax.tree.flatten(tree_b)
  if step_a != step_b or def_a != def_b:
    return float("inf"), counts
  diff = 0.0
  for x, y in zip(leaves_a, leaves_b):
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
      return float("inf"), counts
    if x.size:
      diff = max(diff, float(np.max(np.abs(x.astype(np.float64) -
                                           y.astype(np.float64)))))
  return diff, counts


def check_readable(checkpoints: pathlib.Path) -> None:
  """Every finished checkpoint restores (raises otherwise)."""
  from mmjax import checkpoint  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  for step in finished_steps(checkpoints):
    with ocp.StandardCheckpointer() as c:
      c.metadata(checkpoints / str(step) / "default")
  if finished_steps(checkpoints):
    checkpoint.restore_latest_tree(checkpoints)


def last_start_step(workdir: pathlib.Path) -> int:
  lines = (workdir / "launches.jsonl").read_text().splitlines()
  return json.loads(lines[-1])["start_step"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", type=pathlib.Path, required=True,
                      help="folder for the two runs, the log and the cache")
  parser.add_argument("--kills", type=int, default=3,
                      help="SIGKILLs (the first during a checkpoint write)")
  parser.add_argument("--seed", type=int, default=0,
                      help="seed of the random kill times")
  parser.add_argument("launch_args", nargs=argparse.REMAINDER,
                      help="-- then launch.py's arguments (no --workdir)")
  args = parser.parse_args()
  launch_args = [a for a in args.launch_args if a != "--"]
  args.root.mkdir(parents=True, exist_ok=True)
  launch_args += ["--compilation_cache_dir", str(args.root / "cache")]
  rng = random.Random(args.seed)
  reference, killed = args.root / "reference", args.root / "killed"
  with open(args.root / "launches.log", "a") as log:
    t_ref = run_to_end(launch_args, reference, log)
    print(f"reference run: {t_ref:.0f} s", flush=True)

    trials, resumes, in_write_kills = [], 0, 0
    # SIGTERM, one SIGKILL during a checkpoint write, then random SIGKILLs
    # until `--kills` have landed (one that comes after the run ended does
    # not count), at most 3 * --kills trials.
    plan = [("SIGTERM", "training"), ("SIGKILL", "write")]
    while len(trials) < len(plan) or (
        sum(t["return_code"] == -signal.SIGKILL for t in trials) < args.kills
        and len(trials) < 3 * args.kills + 1):
      name, when = plan[len(trials)] if len(trials) < len(plan) else (
          "SIGKILL", "training")
      before = finished_steps(killed / "checkpoints")
      launches = count_lines(killed / "launches.jsonl")
      rc, in_write = interrupt(
          launch_args, killed, log, getattr(signal, name), when=when,
          delay=rng.uniform(0.0, 0.05) * t_ref)
      after = finished_steps(killed / "checkpoints")
      check_readable(killed / "checkpoints")
      if name == "SIGTERM" and rc not in (75, 0):
        raise SystemExit(f"SIGTERM: launch.py exited with {rc}, expected 75 "
                         f"(checkpoint saved) or 0 (finished first)")
      if count_lines(killed / "launches.jsonl") > launches and before:
        resumes += 1
        if last_start_step(killed) != before[-1]:
          raise SystemExit(f"resumed from step {last_start_step(killed)}, "
                           f"the latest checkpoint was {before[-1]}")
      in_write_kills += in_write
      trials.append({"signal": name, "when": when, "return_code": rc,
                     "during_checkpoint_write": in_write,
                     "latest_checkpoint_before": before[-1] if before else None,
                     "latest_checkpoint_after": after[-1] if after else None})
      print(f"{name}{' during a checkpoint write' if in_write else ''}: "
            f"exit {rc}, latest checkpoint {after[-1] if after else None}",
            flush=True)
      if rc == 0:
        break  # the run ended before the signal
    before = finished_steps(killed / "checkpoints")
    run_to_end(launch_args, killed, log)
    resumes += bool(before)

  diff, counts = compare(reference / "checkpoints", killed / "checkpoints")
  # How each resumed launch found the input's position: "restored" from the
  # checkpoint (streaming input) or "skipped" to (in-memory shuffle).
  input_resumes = collections.Counter(
      launch.get("input_resume") for launch in map(json.loads, (
          killed / "launches.jsonl").read_text().splitlines())
      if launch["start_step"])
  kills = sum(t["return_code"] == -signal.SIGKILL for t in trials)
  print(f"trials run: {len(trials)}, SIGKILLs that landed: {kills} "
        f"({in_write_kills} during a checkpoint write), resumed: {resumes}, "
        f"max difference of the final train_state ({counts} arrays): {diff}")
  print(json.dumps({"trials": trials, "resumes": resumes, "kills": kills,
                    "kills_during_checkpoint_write": in_write_kills,
                    "arrays_compared": counts, "max_abs_difference": diff,
                    "input_resumes": input_resumes}))
  sys.exit(0 if diff == 0.0 else 1)


if __name__ == "__main__":
  main()
