"""Per-device train_state memory of FSDP at real size, on 8 CPU devices.

For a config (default configs/clip_b16.py: ViT-B/16 + 12-layer text
Transformer, full size), on 8 forced host devices:

1. for fsdp = 1, 2, 4, 8 (mesh data x fsdp = 8/fsdp x fsdp), lowers and
   compiles the train step (no step runs) and prints per device:
   parameter and optimizer-state bytes from the state's shardings
   (`NamedSharding.shard_shape` of each leaf, `mmjax.sharding` rules), the
   bytes of the leaves left replicated, and the compiled program's
   `memory_analysis()` (argument, output, temporary bytes);
2. runs `--run_steps` steps (a 1-step warmup, so the second moves the
   parameters) with fsdp=8 and with data=8 (fsdp=1) from the same initial
   state on the same batch and prints the largest difference of the
   updated parameters, and the largest update, for scale. Replicated
   over 8 CPU devices the state is held 8 times in host memory, so this
   runs the same config with `--run_layers` layers per tower (default 2;
   0: the config's own).

  python benchmarks/fsdp_memory.py
  python benchmarks/fsdp_memory.py --config configs/mbt_b16.py
  python benchmarks/fsdp_memory.py --config configs/clip_b16.py:size=tiny
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

config_flags.DEFINE_config_file(
    "config", str(Path(__file__).resolve().parents[1] / "configs" /
                  "clip_b16.py"), "Experiment config file.",
    lock_config=True)
flags.DEFINE_list("fsdp", ["1", "2", "4", "8"], "fsdp axis sizes to compile.")
flags.DEFINE_integer("batch_size", 8, "Global batch of the compiled and run "
                     "steps (the config's is for training).")
flags.DEFINE_integer("run_steps", 2, "Steps of the fsdp=8 vs data=8 run "
                     "(with a 1-step warmup: the learning rate of the first "
                     "step is 0).")
flags.DEFINE_integer("run_layers", 2, "Layers per tower of the fsdp=8 vs "
                     "data=8 step (0: the config's own; skip with -1).")
FLAGS = flags.FLAGS
DEVICES = 8


def mib(n: int) -> float:
  return round(n / 2**20, 1)


def abstract_state(config, model, shapes, tx):
  """`jax.eval_shape` of `create_train_state`'s init (no allocation)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from mmjax.train.state import TrainState  # pylint: disable=g-import-not-at-top

  def init():
    inputs = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    variables = model.init(jax.random.key(config.seed), inputs, train=False)
    return TrainState.create(apply_fn=model.apply,
                             params=variables["params"], tx=tx)
  return jax.eval_shape(init)


def per_device_bytes(state, shardings) -> dict:
  """Bytes one device holds of params / opt_state, and of the leaves left
  replicated, from each leaf's `shard_shape`."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  out = {"params": 0, "opt_state": 0, "replicated": 0}
  leaves = jax.tree_util.tree_leaves_with_path(state)
  for (path, x), s in zip(leaves, jax.tree.leaves(shardings)):
    key = getattr(path[0], "name", "")
    if key not in ("params", "opt_state"):
      continue
    n = int(np.prod(s.shard_shape(x.shape))) * x.dtype.itemsize
    out[key] += n
    if not any(s.spec):
      out["replicated"] += n
  return out


def build(config):
  """(objective, model, tx, schedule, abstract batch shapes, host batch)."""
  import jax  # pylint: disable=g-import-not-at-top
  import synthetic  # pylint: disable=g-import-not-at-top
  from mmjax import objectives  # pylint: disable=g-import-not-at-top
  from mmjax.train import optim  # pylint: disable=g-import-not-at-top
  objective = objectives.resolve(config)
  model = objective.build_model(config)
  tx = optim.make_optimizer(config.optimizer, config.num_train_steps)
  schedule = optim.learning_rate_schedule(config.optimizer,
                                          config.num_train_steps)
  batch = next(synthetic.synthetic_batches(config, config.model.num_classes))
  shapes = {m: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                            batch[m]) for m in config.modalities}
  return objective, model, tx, schedule, shapes, batch


def compile_step(config, fsdp: int, parts):
  """The train step on a (8 / fsdp) x fsdp mesh: (compiled, mesh,
  shardings, abstract state, figures)."""
  import jax  # pylint: disable=g-import-not-at-top
  from mmjax import parallel, sharding  # pylint: disable=g-import-not-at-top
  from mmjax.train import steps  # pylint: disable=g-import-not-at-top
  objective, model, tx, schedule, shapes, batch = parts
  mesh = parallel.make_mesh(fsdp)
  state = abstract_state(config, model, shapes, tx)
  shardings = sharding.state_shardings(state, mesh, config.sharding)
  step = steps.make_train_step_from_config(mesh, config, objective, schedule,
                                           state_sharding=shardings)
  data = parallel.data_sharding(mesh)
  args = (jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                         sharding=s),
                       state, shardings),
          jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                      sharding=data), batch))
  start = time.perf_counter()
  compiled = step.lower(*args).compile()
  seconds = time.perf_counter() - start
  memory = compiled.memory_analysis()
  figures = {"fsdp": fsdp, "data": DEVICES // fsdp,
             "compile_seconds": round(seconds, 1),
             **{f"{k}_mib": mib(v) for k, v in
                per_device_bytes(state, shardings).items()}}
  for name in ("argument_size_in_bytes", "output_size_in_bytes",
               "temp_size_in_bytes", "alias_size_in_bytes"):
    value = getattr(memory, name, None) if memory is not None else None
    if value is not None:
      figures[name.replace("_size_in_bytes", "_mib")] = mib(value)
  return compiled, mesh, shardings, state, figures


def with_layers(config, layers: int):
  """A copy of `config` with `layers` Transformer layers per encoder (and
  fusion block), widths unchanged."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    for encoder in c.model.encoders.values():
      encoder.num_layers = layers
    if "fusion" in c.model and "num_layers" in c.model.fusion:
      c.model.fusion.num_layers = layers
  return c


def equality(config, parts) -> dict:
  """`--run_steps` steps with fsdp=8 and with data=8 from the same state
  and batch:
  the largest absolute difference of the updated parameters, and of the
  step's update (data=8), for scale."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from mmjax import parallel  # pylint: disable=g-import-not-at-top
  from mmjax.train.state import create_train_state  # pylint: disable=g-import-not-at-top
  objective, model, tx, schedule, shapes, batch = parts
  del objective, schedule
  params, logged = {}, {}
  for fsdp in (8, 1):
    compiled, mesh, shardings, _, _ = compile_step(config, fsdp, parts)
    state = create_train_state(model, shapes, tx, config.seed,
                               lambda _: shardings)  # pylint: disable=cell-var-from-loop
    initial = jax.tree.map(np.asarray, jax.device_get(state.params))
    logged[fsdp] = []
    for _ in range(FLAGS.run_steps):
      state, metrics = compiled(state, parallel.to_global(batch, mesh))
      logged[fsdp].append({k: float(metrics[k]) for k in ("loss",
                                                           "grad_norm")})
    params[fsdp] = jax.tree.map(np.asarray, jax.device_get(state.params))
    del state, compiled
  diffs = jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.max(np.abs(a - b))), params[8], params[1]))
  scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(params[1]))
  update = max(jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.max(np.abs(a - b))), params[1], initial)))
  return {"max_abs_param_difference": max(diffs), "max_abs_param": scale,
          "max_abs_update": update,
          "metrics_fsdp8": logged[8], "metrics_data8": logged[1],
          "num_params": sum(int(np.prod(x.shape))
                            for x in jax.tree.leaves(params[1]))}


def main(argv):
  del argv
  from mmjax import parallel  # pylint: disable=g-import-not-at-top
  parallel.configure_cpu_devices(DEVICES, (FLAGS.batch_size,))
  import jax  # pylint: disable=g-import-not-at-top
  assert jax.device_count() == DEVICES, jax.devices()
  config = FLAGS.config.copy_and_resolve_references()
  with config.unlocked():
    config.batch_size = FLAGS.batch_size
    config.sharding.fsdp = 1
  parts = build(config)
  rows = []
  for fsdp in map(int, FLAGS.fsdp):
    *_, figures = compile_step(config, fsdp, parts)
    rows.append(figures)
    print(json.dumps(figures), flush=True)
  print("fsdp data | params MiB | opt_state MiB | replicated MiB | compiled: "
        "argument MiB, temp MiB | compile s")
  for r in rows:
    print(f"{r['fsdp']:4d} {r['data']:4d} | {r['params_mib']:10.1f} | "
          f"{r['opt_state_mib']:13.1f} | {r['replicated_mib']:14.1f} | "
          f"{r.get('argument_mib', float('nan')):.1f}, "
          f"{r.get('temp_mib', float('nan')):.1f} | {r['compile_seconds']}")
  if FLAGS.run_layers >= 0:
    run_config = (with_layers(config, FLAGS.run_layers) if FLAGS.run_layers
                  else config)
    with run_config.unlocked():
      run_config.optimizer.warmup_steps = 1
    result = equality(run_config, build(run_config))
    result["layers_per_tower"] = FLAGS.run_layers or "config"
    result["steps"] = FLAGS.run_steps
    print(json.dumps({"fsdp8_vs_data8": result}))
  print(f"jax {jax.__version__}, {jax.device_count()} "
        f"{jax.devices()[0].device_kind} devices")


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
