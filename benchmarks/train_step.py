"""Throughput of the jitted train step of an experiment config.

Builds the config's model, optimizer and train step exactly as
`launch.py` does (mmjax.train), then reports:
  - compile time of the step (lowering + XLA compilation);
  - examples/s of the step alone, the batch already on device;
  - examples/s with the real input pipeline (tf.data, prefetch to device);
  - model FLOPs per step (XLA cost analysis of forward + backward, the
    whole global batch counted once) / step time, as a fraction of a
    matmul peak measured in the same process in the config's dtype;
  - on GPU / TPU, MFU: the same FLOP rate as a fraction of the device's
    dense bf16 peak from its spec sheet (`BF16_PEAK_FLOPS`, by
    `device_kind`; `--peak_tflops` for another device);
  - peak host memory (max RSS).
Each figure is the median, min and max over `--repeats` runs of `--steps`
steps, after warm-up; the last line is one JSON object.

  python benchmarks/train_step.py --config configs/av_digits.py
  python benchmarks/train_step.py --config configs/av_digits_transformer.py
  python benchmarks/train_step.py --config configs/av_digits.py \
      --config.dtype=bfloat16          # mixed precision (accelerators)
  python benchmarks/train_step.py --config configs/av_digits.py --devices 1
  # Real-size models on synthetic batches (a GPU; on the CPU at batch 2):
  python benchmarks/train_step.py --config configs/clip_b16.py --synthetic \
      --config.dtype=bfloat16 --config.batch_size=256
  python benchmarks/train_step.py --config configs/mbt_b16.py --synthetic \
      --config.dtype=bfloat16 --config.batch_size=64
"""

import json
import os
from pathlib import Path
import sys
import time

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=True)
flags.DEFINE_integer("steps", 10, "Train steps per timed run.")
flags.DEFINE_integer("repeats", 5, "Timed runs.")
flags.DEFINE_integer("warmup", 2, "Untimed runs after compilation.")
flags.DEFINE_integer("devices", None, "CPU devices (no effect on GPU/TPU); "
                     "default: launch.py's choice, "
                     "mmjax.parallel.configure_cpu_devices.")
flags.DEFINE_integer("matmul_size", 2048, "Side of the square fp32 matmul "
                     "that measures the peak FLOP rate.")
flags.DEFINE_float("peak_tflops", None, "Dense bf16 peak of one device "
                   "(TFLOP/s) for the MFU, for a device_kind that "
                   "BF16_PEAK_FLOPS lacks.")
flags.DEFINE_bool("synthetic", False, "Random batches of the dataset's "
                  "shapes instead of the tf.data pipeline (for machines "
                  "without TensorFlow); skips the with-pipeline figure.")
flags.DEFINE_string("write_section", "", "Write the figures into this "
                    "section of benchmarks/RESULTS.md.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


# Dense (no structured sparsity) bf16 tensor-core / MXU peak of one device,
# FLOP/s, by a substring of `jax.Device.device_kind`, first match wins:
# NVIDIA H100 and H200 Tensor Core GPU datasheets (SXM: 1,979 TFLOPS "with
# sparsity", i.e. 989.4 dense; H100 PCIe 756; H200 NVL 835), NVIDIA A100
# datasheet (312), Google Cloud TPU system architecture pages (v4 275, v5e
# 197, v5p 459, v6e / Trillium 918 per chip).
BF16_PEAK_FLOPS = (
    ("H100 PCIe", 756e12), ("H100", 989.4e12),
    ("H200 NVL", 835e12), ("H200", 989.4e12),
    ("A100", 312e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12), ("TPU v5e", 197e12),
    ("TPU v5p", 459e12), ("TPU v5", 459e12),
    ("TPU v6 lite", 918e12), ("TPU v6e", 918e12),
)


def bf16_peak_flops(device_kind: str):
  """The dense bf16 peak (FLOP/s) of `device_kind` from `BF16_PEAK_FLOPS`,
  or None when it is not listed."""
  for key, peak in BF16_PEAK_FLOPS:
    if key.lower() in device_kind.lower():
      return peak
  return None


def matmul_peak_gflops(size: int, repeats: int, dtype: str) -> float:
  """Best rate of a jitted `[size, size] @ [size, size]` in `dtype`
  (GFLOP/s)."""
  import jax  # pylint: disable=g-import-not-at-top
  import timing  # pylint: disable=g-import-not-at-top
  a = jax.random.normal(jax.random.key(0), (size, size), dtype)
  f = jax.jit(lambda a: a @ a)
  seconds = timing.measure(lambda: jax.block_until_ready(f(a)), 2,
                           max(repeats, 5))
  return 2 * size**3 / min(seconds) / 1e9


def model_flops(make_step, state, batch, config) -> float:
  """FLOPs of one train step of the whole global batch: XLA's cost analysis
  of the same step compiled for a single device (with several devices the
  per-device program also repeats the replicated optimizer update on every
  device, which is not model work)."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import AxisType  # pylint: disable=g-import-not-at-top
  del config
  mesh = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Auto,),
                       devices=jax.devices()[:1])
  abstract = lambda tree: jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
  compiled = make_step(mesh).lower(abstract(state), abstract(batch)).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def run(config) -> dict:
  """Times the config's train step; returns the figures."""
  import jax  # pylint: disable=g-import-not-at-top
  import synthetic  # pylint: disable=g-import-not-at-top
  import timing  # pylint: disable=g-import-not-at-top
  from mmjax import parallel  # pylint: disable=g-import-not-at-top
  from mmjax import objectives  # pylint: disable=g-import-not-at-top
  from mmjax.train import optim, steps  # pylint: disable=g-import-not-at-top
  from mmjax.train.state import create_train_state  # pylint: disable=g-import-not-at-top

  mesh = parallel.make_mesh()
  if FLAGS.synthetic:
    host_batches = synthetic.synthetic_batches(config,
                                               config.model.num_classes)
    first = next(host_batches)
    shapes = {m: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape,
                                                             x.dtype), x)
              for m, x in first.items() if m in config.modalities}
  else:
    from mmjax.data import pipeline  # pylint: disable=g-import-not-at-top
    from mmjax.data.builders import registry as datasets  # pylint: disable=g-import-not-at-top
    from mmjax.train import loop  # pylint: disable=g-import-not-at-top
    builder = datasets.get_builder(config.data)
    shapes = loop._example_shapes(builder, config)  # pylint: disable=protected-access
    host_batches = pipeline.train_batches(
        builder, "train", modalities=config.modalities, pp=config.pp_train,
        global_batch_size=config.batch_size, seed=config.seed)
    first = next(host_batches)
  objective = objectives.resolve(config)
  model = objective.build_model(config)
  tx = optim.make_optimizer(config.optimizer, config.num_train_steps)
  state = create_train_state(model, shapes, tx, config.seed,
                             parallel.replicated(mesh))
  schedule = optim.learning_rate_schedule(config.optimizer,
                                          config.num_train_steps)
  train_step_fn = lambda m: steps.make_train_step_from_config(
      m, config, objective, schedule)
  train_step = train_step_fn(mesh)
  batch = parallel.to_global(first, mesh)

  start = time.perf_counter()
  compiled = train_step.lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = model_flops(train_step_fn, state, batch, config) or float(
      cost.get("flops", 0.0))

  holder = {"state": state}

  def on_device():
    s = holder["state"]
    for _ in range(FLAGS.steps):
      s, metrics = compiled(s, batch)
    jax.block_until_ready(metrics)
    holder["state"] = s

  device_batches = parallel.DevicePrefetcher(host_batches, mesh)

  def with_pipeline():
    s = holder["state"]
    for _ in range(FLAGS.steps):
      s, metrics = compiled(s, next(device_batches))
    jax.block_until_ready(metrics)
    holder["state"] = s

  examples = FLAGS.steps * config.batch_size
  device_s = timing.measure(on_device, FLAGS.warmup, FLAGS.repeats)
  pipeline_s = ([] if FLAGS.synthetic else
                timing.measure(with_pipeline, FLAGS.warmup, FLAGS.repeats))
  step_seconds = sorted(device_s)[len(device_s) // 2] / FLAGS.steps
  peak = matmul_peak_gflops(FLAGS.matmul_size, FLAGS.repeats, config.dtype)
  achieved = flops / step_seconds / 1e9
  kind = jax.devices()[0].device_kind
  device_peak = None
  if jax.default_backend() != "cpu":
    device_peak = (FLAGS.peak_tflops * 1e12 if FLAGS.peak_tflops
                   else bf16_peak_flops(kind))
  mfu = (None if device_peak is None else
         achieved * 1e9 / (device_peak * jax.device_count()))
  return {
      "benchmark": "train_step",
      "devices": jax.device_count(), "platform": jax.default_backend(),
      "device_kind": kind, "dtype": config.dtype,
      "global_batch_size": config.batch_size, "steps_per_run": FLAGS.steps,
      "compile_seconds": round(compile_seconds, 2),
      "on_device": timing.summary([examples / s for s in device_s],
                                  "examples/s"),
      "with_pipeline": (timing.summary([examples / s for s in pipeline_s],
                                       "examples/s") if pipeline_s else None),
      "step_ms": round(step_seconds * 1e3, 2),
      "gflop_per_step": round(flops / 1e9, 3),
      "program_gflop_all_devices": round(
          float(cost.get("flops", 0.0)) * jax.device_count() / 1e9, 3),
      "achieved_gflops": round(achieved, 1),
      "matmul_peak_gflops": round(peak, 1),
      "fraction_of_matmul_peak": round(achieved / peak, 3),
      "bf16_peak_tflops_per_device": (None if device_peak is None
                                      else device_peak / 1e12),
      "mfu": None if mfu is None else round(mfu, 4),
      "peak_host_memory_mib": timing.peak_host_memory_mib(),
      "jax": jax.__version__,
  }


def main(argv):
  del argv
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  import timing  # pylint: disable=g-import-not-at-top
  from mmjax import parallel  # pylint: disable=g-import-not-at-top
  parallel.configure_cpu_devices(FLAGS.devices, (FLAGS.config.batch_size,))
  figures = run(FLAGS.config)
  figures["config"] = config_arg()
  print(f"train step of {figures['config']} on {figures['devices']} "
        f"{figures['device_kind']} device(s), {figures['dtype']}, global "
        f"batch {figures['global_batch_size']}:")
  print(f"  compile: {figures['compile_seconds']} s")
  print(f"  on device: {timing.format_summary(figures['on_device'])}")
  if figures["with_pipeline"]:
    print(f"  with input pipeline: "
          f"{timing.format_summary(figures['with_pipeline'])}")
  print(f"  {figures['gflop_per_step']} GFLOP/step at {figures['step_ms']} "
        f"ms = {figures['achieved_gflops']} GFLOP/s, "
        f"{100 * figures['fraction_of_matmul_peak']:.1f}% of the measured "
        f"{figures['dtype']} matmul peak ({figures['matmul_peak_gflops']} "
        f"GFLOP/s)")
  if figures["mfu"] is not None:
    print(f"  MFU {100 * figures['mfu']:.1f}% of {figures['devices']} x "
          f"{figures['bf16_peak_tflops_per_device']:g} TFLOP/s (dense bf16 "
          f"peak of {figures['device_kind']}, spec sheet)")
  elif figures["platform"] != "cpu":
    print(f"  MFU: no bf16 peak known for {figures['device_kind']!r}; "
          f"pass --peak_tflops")
  print(f"  peak host memory: {figures['peak_host_memory_mib']} MiB")
  print(json.dumps(figures))
  if FLAGS.write_section:
    timing.write_section(FLAGS.write_section, markdown(figures))


def config_arg() -> str:
  """The --config value as given (path[:argument])."""
  for i, a in enumerate(sys.argv):
    if a.startswith("--config="):
      return a.split("=", 1)[1]
    if a == "--config" and i + 1 < len(sys.argv):
      return sys.argv[i + 1]
  return "?"


def markdown(f: dict) -> str:
  """A RESULTS.md section for one run of this script."""
  args, skip = [], False
  for a in sys.argv[1:]:
    if skip or a.startswith("--write_section"):
      skip = a == "--write_section"
      continue
    args.append(a)
  cmd = "python " + " ".join([Path(sys.argv[0]).as_posix()] + args)
  import timing  # pylint: disable=g-import-not-at-top
  return "\n".join([
      f"### train_step: {f['config']} ({f['dtype']}, {f['devices']} "
      f"{f['device_kind']} device(s))",
      "",
      f"`{cmd}` on {timing.machine()}, jax {f['jax']}.",
      "",
      "| figure | median | min | max |",
      "|---|---|---|---|",
      *(f"| {name} (examples/s) | {f[key]['median']:g} | {f[key]['min']:g} | "
        f"{f[key]['max']:g} |" for name, key in
        (("step, batch on device", "on_device"),
         ("step with input pipeline", "with_pipeline")) if f[key]),
      "",
      f"Compile {f['compile_seconds']} s; {f['gflop_per_step']} GFLOP per "
      f"step (XLA cost analysis) at {f['step_ms']} ms = "
      f"{f['achieved_gflops']} GFLOP/s, {100 * f['fraction_of_matmul_peak']:.1f}"
      f"% of the {f['dtype']} matmul peak measured in the same process "
      f"({f['matmul_peak_gflops']} GFLOP/s); peak host memory "
      f"{f['peak_host_memory_mib']} MiB." + (
          "" if f["mfu"] is None else
          f" MFU {100 * f['mfu']:.1f}% of the dense bf16 peak "
          f"{f['bf16_peak_tflops_per_device']:g} TFLOP/s per device "
          f"(spec sheet)."),
  ])


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
