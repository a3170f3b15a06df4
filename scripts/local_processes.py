"""Runs launch.py as N processes on this machine, joined by jax.distributed.

  python scripts/local_processes.py --num_processes 2 --cpu_devices 2 -- \\
      --config configs/av_digits.py --workdir runs/av_digits_2x2

Each process gets `--coordinator_address localhost:<free port>
--num_processes N --process_id i --cpu_devices D` and the arguments after
`--` (or any this script does not know); on CPU they form one job of N * D
devices (gloo collectives), which trains like one process of N * D devices.
Their output is streamed with a `[i]` prefix. Exits with the first failing
process's status after terminating the others (which would otherwise wait
in a collective), else 0.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _stream(proc: subprocess.Popen, prefix: str, lock: threading.Lock) -> None:
  for line in proc.stdout:  # universal newlines: tqdm's \r ends a line too
    with lock:
      sys.stdout.write(f"{prefix}{line.rstrip()}\n")
      sys.stdout.flush()


def _terminate(procs, grace_s: float = 10.0) -> None:
  for p in procs:
    if p.poll() is None:
      p.send_signal(signal.SIGTERM)
  deadline = time.monotonic() + grace_s
  for p in procs:
    try:
      p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()


def run(num_processes: int, cpu_devices: int, launch_args, port: int = 0,
        python: str = sys.executable) -> int:
  """Starts the processes, streams their output, returns the exit status."""
  address = f"localhost:{port or free_port()}"
  lock = threading.Lock()
  procs, threads = [], []
  for i in range(num_processes):
    cmd = [python, os.path.join(REPO_ROOT, "launch.py"),
           f"--coordinator_address={address}",
           f"--num_processes={num_processes}", f"--process_id={i}",
           f"--cpu_devices={cpu_devices}", *launch_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    procs.append(proc)
    threads.append(threading.Thread(target=_stream, args=(proc, f"[{i}] ", lock),
                                    daemon=True))
    threads[-1].start()
  status = 0
  try:
    while [p.poll() for p in procs].count(None):  # polls every process
      failed = [p for p in procs if p.returncode not in (None, 0)]
      if failed:
        status = failed[0].returncode
        with lock:
          print(f"process {procs.index(failed[0])} exited with status "
                f"{status}; terminating the others", file=sys.stderr, flush=True)
        _terminate(procs)
        break
      time.sleep(0.2)
  except KeyboardInterrupt:
    _terminate(procs)
    status = 130
  for t in threads:
    t.join(timeout=5)
  if status == 0:
    status = next((p.returncode for p in procs if p.returncode), 0)
  return status if status >= 0 else 128 - status  # killed by signal -status


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      allow_abbrev=False)
  parser.add_argument("--num_processes", type=int, default=2,
                      help="processes to start (default 2)")
  parser.add_argument("--cpu_devices", type=int, default=1,
                      help="CPU devices of each process (default 1)")
  parser.add_argument("--port", type=int, default=0,
                      help="coordinator port on localhost (default: a free one)")
  args, launch_args = parser.parse_known_args(argv)
  if launch_args and launch_args[0] == "--":
    launch_args = launch_args[1:]
  if args.num_processes < 1 or args.cpu_devices < 1:
    parser.error("--num_processes and --cpu_devices must be >= 1")
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    print("warning: XLA_FLAGS sets --xla_force_host_platform_device_count, "
          "which overrides --cpu_devices in each process", file=sys.stderr)
  return run(args.num_processes, args.cpu_devices, launch_args, args.port)


if __name__ == "__main__":
  sys.exit(main())
