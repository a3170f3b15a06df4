"""mmjax against PyTorch on the av_digits train step, one command.

Runs `torch_reference.py` (eager and torch.compile, both memory layouts)
and `train_step.py --config configs/av_digits.py` in fresh processes,
alternating for `--rounds` rounds (this machine's speed drifts by 20% within
minutes, so one pair of runs can give a ratio off by as much), with the
same global batch (64) and float32, and prints the ratio of mmjax's examples/s (batch on device) to PyTorch's best
mode. mmjax runs as `launch.py` would (on a CPU, the global batch split over
the CPU devices `mmjax.parallel.configure_cpu_devices` picks, 4 for batch
64 on 2 cores) and XLA:CPU uses every core; PyTorch gets `--threads` (default: the
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
  parser.add_argument("--rounds", type=int, default=3,
                      help="alternating PyTorch / mmjax rounds")
  parser.add_argument("--write_results", action="store_true",
                      help="write the 'compare' section of RESULTS.md")
  args = parser.parse_args()
  torch_runs, jax_runs, ratios = [], [], []
  for _ in range(args.rounds):
    torch_runs.append(_last_json([
        sys.executable, str(HERE / "torch_reference.py"), "--threads",
        str(args.threads), "--steps", str(args.steps), "--repeats",
        str(args.repeats)]))
    jax_runs.append(_last_json([
        sys.executable, str(HERE / "train_step.py"), "--config",
        "configs/av_digits.py", "--steps", str(args.steps), "--repeats",
        str(args.repeats), *PLAIN_RECIPE]))
    ratios.append(jax_runs[-1]["on_device"]["median"] /
                  torch_runs[-1]["best_examples_per_second"])
  modes = {mode: timing.summary([r["modes"][mode]["median"]
                                 for r in torch_runs], "examples/s")
           for mode in torch_runs[0]["modes"]}
  best = max(modes, key=lambda m: modes[m]["median"])
  jax_on_device = timing.summary(
      [r["on_device"]["median"] for r in jax_runs], "examples/s")
  jax_pipeline = timing.summary(
      [r["with_pipeline"]["median"] for r in jax_runs], "examples/s")
  torch_rate = modes[best]["median"]
  jax_rate = jax_on_device["median"]
  ratio = jax_rate / torch_rate
  round_ratios = timing.summary(ratios, "x")
  jax_fig = sorted(jax_runs, key=lambda r: r["on_device"]["median"])[
      len(jax_runs) // 2]
  print(f"mmjax {jax_rate:g} examples/s / PyTorch {torch_rate:g} examples/s "
        f"({best}) = {ratio:.2f}x (medians of {args.rounds} alternating "
        f"rounds; per-round ratio {timing.format_summary(round_ratios)})")
  print(json.dumps({"benchmark": "compare", "mmjax_examples_per_second":
                    jax_rate, "torch_examples_per_second": torch_rate,
                    "torch_mode": best, "ratio": round(ratio, 3),
                    "round_ratios": round_ratios, "rounds": args.rounds}))
  if args.write_results:
    torch_version = torch_runs[0]["torch"]
    rows = [f"| PyTorch {torch_version} {mode} | {f['median']:g} | "
            f"{f['min']:g} | {f['max']:g} |" for mode, f in modes.items()]
    rows.append(f"| mmjax (jax {jax_fig['jax']}, {jax_fig['devices']} CPU "
                f"devices), batch on device | {jax_on_device['median']:g} | "
                f"{jax_on_device['min']:g} | {jax_on_device['max']:g} |")
    rows.append(f"| mmjax, with the input pipeline | "
                f"{jax_pipeline['median']:g} | {jax_pipeline['min']:g} | "
                f"{jax_pipeline['max']:g} |")
    timing.write_section("compare", "\n".join([
        "## mmjax vs PyTorch: av_digits train step",
        "",
        f"`python benchmarks/compare.py --write_results` on {timing.machine()}"
        f"; {args.threads} threads, global batch 64, float32. {args.rounds} "
        f"rounds, each one `torch_reference.py` then one `train_step.py` "
        f"process ({args.repeats} runs of {args.steps} steps after warm-up, "
        f"median examples/s); the table gives the median, min and max of "
        f"the rounds' medians.",
        "",
        "| implementation | median | min | max |",
        "|---|---|---|---|",
        *rows,
        "",
        f"**Ratio mmjax / best PyTorch ({best}): {ratio:.2f}x** (per round: "
        f"median {round_ratios['median']:g}x, min {round_ratios['min']:g}x, "
        f"max {round_ratios['max']:g}x). mmjax, median round: "
        f"{jax_fig['gflop_per_step']} GFLOP per step at "
        f"{jax_fig['achieved_gflops']} GFLOP/s, "
        f"{100 * jax_fig['fraction_of_matmul_peak']:.1f}% of the fp32 matmul "
        f"peak measured in the same process "
        f"({jax_fig['matmul_peak_gflops']} GFLOP/s); compile "
        f"{jax_fig['compile_seconds']} s.",
    ]))


if __name__ == "__main__":
  main()
