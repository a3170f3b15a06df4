"""Time for the training input to resume at a step, in-memory vs streaming.

For each `--steps` value s, on the config's real dataset and pp:
  - in memory (`input.shuffle_buffer_size=0`): build the pipeline with
    `start_step=s` (it skips the s * global batch examples already trained
    on) and take the first batch;
  - streaming (`--shuffle_buffer_size`): run a pipeline to step s (not
    timed), save its position with Orbax as the train loop does
    (`mmjax.data.input_checkpoint`), then time building a new pipeline,
    restoring the position and taking the first batch; and check that batch
    is the one the running pipeline yields next.
Each figure is the median, min and max over `--repeats` runs; also the size
of the saved position. The last line is one JSON object.

  python benchmarks/input_resume.py --config configs/av_digits.py \
      --steps 100,10000 --write_section input_resume
"""

import json
import os
from pathlib import Path
import sys
import tempfile
import time

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=True)
flags.DEFINE_list("steps", ["100", "10000"], "Steps to resume at.")
flags.DEFINE_integer("shuffle_buffer_size", 4096,
                     "Streaming shuffle buffer (examples).")
flags.DEFINE_integer("repeats", 3, "Timed runs per figure.")
flags.DEFINE_string("write_section", "", "Write the figures into this "
                    "section of benchmarks/RESULTS.md.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def _tree_bytes(folder: Path) -> int:
  return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  import timing  # pylint: disable=g-import-not-at-top
  from mmjax import checkpoint  # pylint: disable=g-import-not-at-top
  from mmjax.data import input_checkpoint, pipeline  # pylint: disable=g-import-not-at-top
  from mmjax.data.builders import registry as datasets  # pylint: disable=g-import-not-at-top

  config = FLAGS.config
  builder = datasets.get_builder(config.data)

  def build(start_step, buffer):
    return pipeline.train_batches(
        builder, "train", modalities=config.modalities, pp=config.pp_train,
        global_batch_size=config.batch_size, seed=config.seed,
        start_step=start_step, shuffle_buffer_size=buffer,
        cycle_length=config.input.cycle_length)

  figures = {}
  for step in map(int, FLAGS.steps):
    def in_memory():
      next(build(step, 0))
    memory_s = timing.measure(in_memory, 0, FLAGS.repeats)

    running = build(0, FLAGS.shuffle_buffer_size)
    t = time.perf_counter()
    for _ in range(step):
      next(running)
    advance_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
      manager = checkpoint.make_manager(Path(tmp) / "checkpoints", keep=1)
      manager.save(step, args=ocp.args.Composite(
          default=ocp.args.StandardSave({"step": np.int32(step)}),
          input=input_checkpoint.InputSave(running.iterator, [])))
      manager.wait_until_finished()
      saved_bytes = _tree_bytes(Path(tmp) / "checkpoints" / str(step) / "input")
      expected = next(running)
      firsts = []

      def streaming():
        resumed = build(0, FLAGS.shuffle_buffer_size)
        checkpoint.restore_input_position(manager, step, resumed.iterator)
        firsts.append(next(resumed))
      streaming_s = timing.measure(streaming, 0, FLAGS.repeats)
      manager.close()
    same = all(np.array_equal(f[k], expected[k]) for f in firsts for k in f)
    figures[str(step)] = {
        "in_memory_skip": timing.summary(memory_s, "s"),
        "streaming_restore": timing.summary(streaming_s, "s"),
        "streaming_saved_position_mib": round(saved_bytes / 2**20, 1),
        "restored_batch_is_the_next_one": same,
        "seconds_to_run_to_the_step": round(advance_s, 1)}
    print(f"step {step}: in memory (skip) "
          f"{timing.format_summary(figures[str(step)]['in_memory_skip'])}; "
          f"streaming (restore) "
          f"{timing.format_summary(figures[str(step)]['streaming_restore'])}, "
          f"saved position {saved_bytes / 2**20:.1f} MiB, next batch "
          f"{'identical' if same else 'DIFFERENT'}", flush=True)

  result = {"benchmark": "input_resume",
            "config": config_flags.get_config_filename(FLAGS["config"]),
            "global_batch_size": config.batch_size,
            "shuffle_buffer_size": FLAGS.shuffle_buffer_size,
            "train_examples": builder.info.splits["train"].num_examples,
            "machine": timing.machine(), "by_step": figures}
  if FLAGS.write_section:
    rows = "\n".join(
        f"| {s} | {timing.format_summary(f['in_memory_skip'])} | "
        f"{timing.format_summary(f['streaming_restore'])} | "
        f"{f['streaming_saved_position_mib']} | "
        f"{f['restored_batch_is_the_next_one']} |" for s, f in figures.items())
    timing.write_section(FLAGS.write_section, (
        f"Resume time of the training input (`{' '.join(sys.argv)}`), "
        f"{result['machine']}; global batch {config.batch_size}, "
        f"{result['train_examples']} training examples, streaming buffer "
        f"{FLAGS.shuffle_buffer_size}.\n\n"
        "| step | in memory: skip to the step | streaming: restore the "
        "saved position | saved position (MiB) | restored batch = next "
        "batch |\n|---|---|---|---|---|\n" + rows))
  print(json.dumps(result))


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
