"""Data-parallel scaling at a fixed global batch size over 1, 2, 4 and 8
host-platform CPU devices (`--xla_force_host_platform_device_count`).

On a machine with fewer cores than devices more devices are not faster:
the devices share the cores. The point is that the per-device work shrinks
with the device count and that nothing grows that should not (compile
time, memory, the gradient all-reduce). Each device count runs
`train_step.py` in a fresh process.

  python benchmarks/scaling.py --config configs/av_digits.py --write_results
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

HERE = Path(__file__).resolve().parent


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="configs/av_digits.py")
  parser.add_argument("--devices", default="1,2,4,8")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--write_results", action="store_true")
  args = parser.parse_args()
  rows = []
  for n in [int(d) for d in args.devices.split(",")]:
    cmd = [sys.executable, str(HERE / "train_step.py"), "--config",
           args.config, "--devices", str(n), "--steps", str(args.steps),
           "--repeats", str(args.repeats), "--matmul_size", "1024"]
    print("$ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=HERE.parent, check=True, text=True,
                         stdout=subprocess.PIPE,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
    f = json.loads(out.strip().splitlines()[-1])
    rows.append(f)
    print(f"{n} devices: {timing.format_summary(f['on_device'])}, "
          f"{f['global_batch_size'] // n} examples per device, compile "
          f"{f['compile_seconds']} s, {f['program_gflop_all_devices']} GFLOP/step "
          f"(all devices), "
          f"peak host memory {f['peak_host_memory_mib']} MiB", flush=True)
  print(json.dumps({"benchmark": "scaling", "config": args.config, "runs": [
      {k: r[k] for k in ("devices", "on_device", "compile_seconds",
                         "program_gflop_all_devices", "peak_host_memory_mib")}
      for r in rows]}))
  if args.write_results:
    timing.write_section("scaling", "\n".join([
        f"## Scaling over host-platform devices: {args.config}",
        "",
        f"`python benchmarks/scaling.py --config {args.config} "
        f"--write_results` on {timing.machine()}; global batch "
        f"{rows[0]['global_batch_size']} at every device count.",
        "",
        "| devices | examples per device | examples/s (median, min-max) | "
        "compile (s) | GFLOP/step, all devices' programs (XLA cost analysis) | "
        "peak host memory (MiB) |",
        "|---|---|---|---|---|---|",
        *(f"| {r['devices']} | {r['global_batch_size'] // r['devices']} | "
          f"{r['on_device']['median']:g} ({r['on_device']['min']:g}-"
          f"{r['on_device']['max']:g}) | {r['compile_seconds']} | "
          f"{r['program_gflop_all_devices']} | {r['peak_host_memory_mib']} |"
          for r in rows),
    ]))


if __name__ == "__main__":
  main()
