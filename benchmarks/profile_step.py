"""Where a config's train step spends its time: per-HLO-op totals from a
`jax.profiler` trace.

Traces `--steps` steps of the jitted train step (batch on device, after
warm-up), converts the trace with `xprof` (pip install -r
benchmarks/requirements.txt) and prints the `--top` ops by total time per
step, each with its output shape and the `op_name` of the model code it
came from (from the compiled HLO's metadata). This is how the profile in
benchmarks/RESULTS.md was made.

  python benchmarks/profile_step.py --config configs/av_digits.py --devices 1
"""

import collections
import glob
import json
from pathlib import Path
import re
import sys
import tempfile

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=True)
flags.DEFINE_integer("steps", 5, "Traced steps.")
flags.DEFINE_integer("top", 30, "Ops to print.")
flags.DEFINE_integer("devices", None, "CPU devices, as in train_step.py.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS

# Trace events that are not HLO ops.
_NOT_OPS = ("ThreadpoolListener", "ThunkExecutor", "$", "PjitFunction",
            "ParseArguments", "CommonPjRtLoadedExecutable")


def hlo_metadata(hlo_text: str):
  """`{instruction name: (output shape, op_name)}` of compiled HLO text."""
  meta = {}
  for line in hlo_text.splitlines():
    m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
    if m:
      op = re.search(r'op_name="([^"]+)"', line)
      meta[m.group(1)] = (m.group(2), op.group(1) if op else "")
  return meta


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  from xprof.convert import raw_to_tool_data  # pylint: disable=g-import-not-at-top
  from mmjax import parallel  # pylint: disable=g-import-not-at-top
  from mmjax import objectives  # pylint: disable=g-import-not-at-top
  from mmjax.train import optim, steps  # pylint: disable=g-import-not-at-top
  from mmjax.train.state import create_train_state  # pylint: disable=g-import-not-at-top
  import synthetic  # pylint: disable=g-import-not-at-top

  config = FLAGS.config
  parallel.configure_cpu_devices(FLAGS.devices, (config.batch_size,))
  mesh = parallel.make_mesh()
  first = next(synthetic.synthetic_batches(config, config.model.num_classes))
  shapes = {m: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                            x)
            for m, x in first.items() if m in config.modalities}
  objective = objectives.resolve(config)
  state = create_train_state(
      objective.build_model(config), shapes,
      optim.make_optimizer(config.optimizer, config.num_train_steps),
      config.seed, parallel.replicated(mesh))
  step = steps.make_train_step_from_config(
      mesh, config, objective,
      optim.learning_rate_schedule(config.optimizer, config.num_train_steps))
  batch = parallel.to_global(first, mesh)
  compiled = step.lower(state, batch).compile()
  meta = hlo_metadata(compiled.as_text())
  for _ in range(3):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      for _ in range(FLAGS.steps):
        state, metrics = compiled(state, batch)
      jax.block_until_ready(metrics)
    xplane = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    data, _ = raw_to_tool_data.xspace_to_tool_data(xplane, "trace_viewer", {})
  events = json.loads(data)["traceEvents"]
  total = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and not e["name"].startswith(_NOT_OPS):
      total[e["name"]] += e.get("dur", 0) / 1e3 / FLAGS.steps
  print(f"{config.batch_size} examples, {jax.device_count()} "
        f"{jax.devices()[0].device_kind} device(s): HLO ops, ms per step "
        f"summed over threads (all ops: {sum(total.values()):.1f} ms)")
  for name, ms in total.most_common(FLAGS.top):
    shape, op_name = meta.get(name, ("", ""))
    print(f"{ms:8.2f}  {name:32s} {shape:36s} {op_name[-100:]}")


if __name__ == "__main__":
  sys.path.insert(0, str(Path(__file__).resolve().parent))
  app.run(main)
