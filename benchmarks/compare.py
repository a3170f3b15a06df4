"""mmjax against PyTorch on the av_digits train step, one command.

Runs `torch_reference.py` (eager and torch.compile, both memory layouts)
and `train_step.py --config configs/av_digits.py` one after the other in
fresh processes on the same machine, same global batch (64), float32, and
prints the ratio of mmjax's examples/s (batch on device) to PyTorch's best
mode. mmjax runs as `launch.py` would (on a CPU, the global batch split over
the CPU devices `mmjax.parallel.configure_cpu_devices` picks, 8 for batch
64) and XLA:CPU uses every core; PyTorch gets `--threads` (default: the
machine's core count), so both use the same cores.

  pip install -r benchmarks/requirements.txt
  python benchmarks/compare.py --write_results
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


def _last_json(cmd):
  print("$ " + " ".join(cmd), flush=True)
  out = subprocess.run(cmd, cwd=HERE.parent, check=True, text=True,
                       stdout=subprocess.PIPE, env={
                           **os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
  print(out.rstrip(), flush=True)
  return json.loads(out.strip().splitlines()[-1])


# The model of torch_reference.py: the default config without the unimodal
# auxiliary heads and modality dropout of its training recipe.
PLAIN_RECIPE = ("--config.aux_loss_weight=0.0",
                "--config.modality_dropout.image=0.0",
                "--config.modality_dropout.audio=0.0")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--threads", type=int,
                      default=len(os.sched_getaffinity(0)))
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--write_results", action="store_true",
                      help="write the 'compare' section of RESULTS.md")
  args = parser.parse_args()
  torch_fig = _last_json([
      sys.executable, str(HERE / "torch_reference.py"), "--threads",
      str(args.threads), "--steps", str(args.steps), "--repeats",
      str(args.repeats)])
  jax_fig = _last_json([
      sys.executable, str(HERE / "train_step.py"), "--config",
      "configs/av_digits.py", "--steps", str(args.steps), "--repeats",
      str(args.repeats), *PLAIN_RECIPE])
  best = torch_fig["best_mode"]
  torch_rate = torch_fig["best_examples_per_second"]
  jax_rate = jax_fig["on_device"]["median"]
  ratio = jax_rate / torch_rate
  print(f"mmjax {jax_rate:g} examples/s / PyTorch {torch_rate:g} examples/s "
        f"({best}) = {ratio:.2f}x")
  print(json.dumps({"benchmark": "compare", "mmjax_examples_per_second":
                    jax_rate, "torch_examples_per_second": torch_rate,
                    "torch_mode": best, "ratio": round(ratio, 3)}))
  if args.write_results:
    rows = [f"| PyTorch {torch_fig['torch']} {mode} | {f['median']:g} | "
            f"{f['min']:g} | {f['max']:g} |"
            for mode, f in torch_fig["modes"].items()]
    j = jax_fig["on_device"]
    rows.append(f"| mmjax (jax {jax_fig['jax']}, {jax_fig['devices']} CPU "
                f"devices), batch on device | "
                f"{j['median']:g} | {j['min']:g} | {j['max']:g} |")
    p = jax_fig["with_pipeline"]
    rows.append(f"| mmjax, with the input pipeline | {p['median']:g} | "
                f"{p['min']:g} | {p['max']:g} |")
    timing.write_section("compare", "\n".join([
        "## mmjax vs PyTorch: av_digits train step",
        "",
        f"`python benchmarks/compare.py --write_results` on {timing.machine()}"
        f"; {args.threads} threads, global batch 64, float32; examples/s over "
        f"{args.repeats} runs of {args.steps} steps after warm-up.",
        "",
        "| implementation | median | min | max |",
        "|---|---|---|---|",
        *rows,
        "",
        f"**Ratio mmjax / best PyTorch ({best}): {ratio:.2f}x.** mmjax: "
        f"{jax_fig['gflop_per_step']} GFLOP per step at "
        f"{jax_fig['achieved_gflops']} GFLOP/s, "
        f"{100 * jax_fig['fraction_of_matmul_peak']:.1f}% of the fp32 matmul "
        f"peak measured in the same process "
        f"({jax_fig['matmul_peak_gflops']} GFLOP/s); compile "
        f"{jax_fig['compile_seconds']} s.",
    ]))


if __name__ == "__main__":
  main()
