"""The one entry point: train or evaluate an experiment config.

  python launch.py --config configs/av_digits.py --workdir runs/av_digits \
      --config.optimizer.learning_rate=3e-4
  python launch.py --workdir runs/av_digits --mode=evaluate \
      --config.data.manual_dir=/path/to/other/data
  python launch.py --config configs/av_digits.py:fusion=cross_attention \
      --workdir runs/mult --config.model.fusion.num_heads=2
  python launch.py --config configs/av_digits.py --workdir runs/av_digits \
      --mode=robustness [--reference_workdir runs/late_fusion] \
      [--unimodal_workdirs=runs/image_only,runs/audio_only]
  python launch.py --workdir runs/av_digits --mode=export

A trained workdir holds its config (config.json) and fitted preprocessing
state (assets/): given with --workdir alone, a command reads the config back
from it (overrides as usual; evaluation may change only keys that leave the
model and its preprocessing alone: data folder, splits, batch sizes).
Running the same train command again with the same workdir resumes from the
latest checkpoint; a resume that changes the learning-rate schedule, global
batch size, seed, data or process count is refused unless
--allow_config_change. SIGTERM or SIGINT saves a checkpoint at the current
step and exits with status 75 (EX_TEMPFAIL: run again to resume); a second
signal exits at once. A NaN or infinite loss stops the run (status 1)
without saving past the last finite step. Multi-host: start one process per host with
`--jax_distributed` (auto-detected on SLURM, Open MPI, Cloud TPU) or with
`--coordinator_address`, `--num_processes` and `--process_id`.
"""

import os
import sys
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from mmjax.data.errors import DataError
from mmjax.registry import UnknownNameError

config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (a get_config() module). "
    "Optional with the --workdir of a trained run: its config.json is read "
    "back.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, results.")
flags.DEFINE_enum("mode", "train",
                  ["train", "evaluate", "robustness", "export", "predict",
                   "embed"],
                  "train (resuming if possible); evaluate the latest "
                  "checkpoint of --workdir on the config's dataset; "
                  "robustness: missing modalities, corruption sweeps and "
                  "intermodal analysis of that checkpoint "
                  "(mmjax.evaluation.robustness), into <workdir>/robustness/; "
                  "export: serving artifacts of that checkpoint into "
                  "<workdir>/export/ (mmjax.export.export) and "
                  "<workdir>/model_card.md; or predict / embed on new files "
                  "(--predict_manifest).")
flags.DEFINE_string("predict_manifest", None,
                    "--mode=predict (top-k labels, or zero-shot classes of a "
                    "contrastive run) / embed (a contrastive run's "
                    "embeddings): the latest checkpoint on a CSV or JSONL "
                    "manifest of new inputs (columns image, audio, text, "
                    "video, optional label; paths relative to its folder), "
                    "into <workdir>/predictions|embeddings/<time>/ "
                    "(mmjax.predict.cli).")
flags.DEFINE_bool("skip_bad_rows", False, "--mode=predict/embed: record an "
                  "unreadable row as an error instead of stopping.")
flags.DEFINE_integer("top_k", 5, "--mode=predict: labels per row.")
flags.DEFINE_string("zero_shot_classes", None,
                    "--mode=predict, contrastive runs: a file of class "
                    "names, one per line (default: the dataset's).")
flags.DEFINE_string("reference_workdir", None,
                    "--mode=robustness: a run already analysed the same way "
                    "(e.g. late fusion), the reference of effective "
                    "robustness.")
flags.DEFINE_list("corruptions", None,
                  "--mode=robustness: the corruption sweeps to run (names "
                  "of mmjax.analysis.corruptions.CORRUPTIONS, comma-"
                  "separated; default all; 'none' for none).")
flags.DEFINE_list("unimodal_workdirs", [],
                  "--mode=robustness: single-modality runs already analysed "
                  "the same way (comma-separated), drawn per corruption "
                  "family in corruptions.png next to the model and the "
                  "model with the corrupted modality marked missing.")
flags.DEFINE_integer(
    "cpu_devices", None,
    "CPU devices for data parallelism when running on CPU (no effect on "
    "GPU/TPU). Default: two per available core, or the largest count below "
    "that which divides config.batch_size and config.eval_batch_size "
    "(faster on multi-core CPUs, see "
    "mmjax.parallel.default_cpu_device_count); ignored when XLA_FLAGS "
    "sets --xla_force_host_platform_device_count.")
flags.DEFINE_bool("allow_config_change", False,
                  "Resume even when the learning-rate schedule, global batch "
                  "size, seed, data or process count differ from the "
                  "checkpoint's run; evaluate with a config whose model or "
                  "preprocessing keys differ from the run's "
                  "(mmjax.workdir.configs.MODEL_KEYS).")
flags.DEFINE_string(
    "compilation_cache_dir", os.environ.get("MMJAX_COMPILATION_CACHE_DIR"),
    "Persistent XLA compilation cache (jax_compilation_cache_dir): a run "
    "that compiles the same step again loads it from here. Default: "
    "$MMJAX_COMPILATION_CACHE_DIR, else none. May be a gs:// path.")
flags.DEFINE_bool("jax_distributed", False,
                  "Join a multi-process job (jax.distributed.initialize).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Number of processes.")
flags.DEFINE_integer("process_id", None, "This process's index.")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS
EXIT_PREEMPTED = 75  # EX_TEMPFAIL (sysexits.h): try again, it resumes


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if not FLAGS["verbosity"].present:  # library INFO logs only on request
    logging.set_verbosity(logging.WARNING)
  from mmjax import compilation_cache, parallel  # pylint: disable=g-import-not-at-top
  from mmjax.data.errors import DataError  # pylint: disable=g-import-not-at-top
  from mmjax.export import model_card  # pylint: disable=g-import-not-at-top
  from mmjax.train import loop  # pylint: disable=g-import-not-at-top
  from mmjax.train.preemption import Preempted  # pylint: disable=g-import-not-at-top
  from mmjax.workdir import configs as workdir_configs  # pylint: disable=g-import-not-at-top

  if FLAGS.compilation_cache_dir:
    compilation_cache.enable(FLAGS.compilation_cache_dir)
  parallel.configure_cpu_devices(
      FLAGS.cpu_devices, (FLAGS.config.batch_size, FLAGS.config.eval_batch_size),
      num_processes=FLAGS.num_processes or 1)
  parallel.initialize_distributed(FLAGS.jax_distributed, FLAGS.coordinator_address,
                                  FLAGS.num_processes, FLAGS.process_id)
  try:
    if FLAGS.mode != "train" and workdir_configs.saved_configs(FLAGS.workdir):
      workdir_configs.check_evaluation_config(
          FLAGS.config, FLAGS.workdir, FLAGS.allow_config_change)
    if FLAGS.mode == "train":
      loop.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                              allow_config_change=FLAGS.allow_config_change)
      model_card.write_model_card(FLAGS.config, FLAGS.workdir)
      print(f"Done. Results in {os.path.join(FLAGS.workdir, 'results.json')}")
    elif FLAGS.mode == "evaluate":
      from mmjax.evaluation import restore  # pylint: disable=g-import-not-at-top
      out_dir = restore.evaluate_checkpoint(FLAGS.config, FLAGS.workdir)
      print(f"Done. Results in {os.path.join(out_dir, 'results.json')}")
    elif FLAGS.mode == "export":
      from mmjax.export import export  # pylint: disable=g-import-not-at-top
      out_dir = export.export_workdir(FLAGS.config, FLAGS.workdir)
      print(f"Done. Exported to {out_dir} (model card: "
            f"{os.path.join(FLAGS.workdir, 'model_card.md')})")
    elif FLAGS.mode in ("predict", "embed"):
      from mmjax.predict import cli  # pylint: disable=g-import-not-at-top
      out_dir = cli.run(FLAGS.mode, FLAGS.config, FLAGS.workdir,
                        FLAGS.predict_manifest, top_k=FLAGS.top_k,
                        skip_bad_rows=FLAGS.skip_bad_rows,
                        zero_shot_classes=FLAGS.zero_shot_classes)
      print(f"Done. Results in {out_dir}")
    else:
      from mmjax.evaluation import robustness  # pylint: disable=g-import-not-at-top
      out_dir = robustness.evaluate_robustness(
          FLAGS.config, FLAGS.workdir, FLAGS.reference_workdir,
          None if FLAGS.corruptions is None else
          [c for c in FLAGS.corruptions if c != "none"],
          unimodal_workdirs=FLAGS.unimodal_workdirs)
      print(f"Done. Results in {os.path.join(out_dir, 'robustness.md')}")
  except Preempted as e:
    print(f"Preempted. {e}", file=sys.stderr, flush=True)
    sys.exit(EXIT_PREEMPTED)
  except (DataError, FileNotFoundError, KeyError, ValueError,
          loop.TrainingDiverged) as e:
    logging.debug("", exc_info=True)
    message = e.args[0] if isinstance(e, KeyError) and e.args else e
    sys.exit(f"error: {message}")


def _wrapped(e: BaseException, kind):
  """The `kind` exception that `e` is or wraps
  (in its args, cause or context), else None."""
  pending, seen = [e], set()
  while pending:
    e = pending.pop()
    if id(e) in seen:
      continue
    seen.add(id(e))
    if isinstance(e, kind):
      return e
    pending += [a for a in e.args if isinstance(a, BaseException)]
    pending += [c for c in (e.__cause__, e.__context__) if c is not None]
  return None


def _flag_value(argv, name: str):
  """The value of `--name=v` or `--name v` in `argv`, else None."""
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def with_workdir_config(argv):
  """`argv`, with `--config=<mmjax/workdir/config_file.py>:<workdir>` first
  when it gives `--workdir` but no `--config`: the run's own config.

  Exits with a one-line error when that workdir holds no config.json.
  """
  if any(a == "--config" or a.startswith("--config=") for a in argv[1:]):
    return argv
  workdir = _flag_value(argv, "workdir")
  if workdir is None:
    return argv  # absl reports the missing --workdir
  from mmjax.workdir import config_file, configs  # pylint: disable=g-import-not-at-top
  if not configs.saved_configs(workdir):
    sys.exit(f"error: --config is required: {workdir} holds no config.json "
             f"(only the workdir of a trained run can be given without "
             f"--config)")
  return [argv[0], f"--config={config_file.__file__}:{workdir}", *argv[1:]]


def _verbosity(argv) -> int:
  """The last `--verbosity` / `-v` value in `argv` (0 without one): flags
  after `--config` are not parsed yet when reading the config fails."""
  level = 0
  for i, arg in enumerate(argv):
    name, eq, value = arg.partition("=")
    if name in ("--verbosity", "-v"):
      value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
      level = int(value) if value.lstrip("-").isdigit() else level
  return level


def parse_flags(argv):
  """absl flag parsing, with an unknown `--config.<key>`, an unknown
  registered name in the config-file argument (`:fusion=nope`), or a
  `DataError` of reading the config (e.g. configs/manifest.py's manifest),
  reported in one line (a DataError's traceback too with `--verbosity=1`);
  a trained `--workdir` without `--config` reads its own config
  (`with_workdir_config`)."""
  argv = with_workdir_config(argv)
  try:
    return FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    unknown = _wrapped(e, UnknownNameError)
    if unknown is not None:  # however the config or absl wrapped it
      sys.exit(f"error: {unknown}")
    data_error = _wrapped(e, DataError)
    # config_flags raises a copy whose message is the traceback: the first.
    while isinstance(getattr(data_error, "__context__", None), DataError):
      data_error = data_error.__context__
    if data_error is not None:
      if _verbosity(argv) >= 1:
        traceback.print_exception(data_error)
      sys.exit(f"error: {data_error}")
    if isinstance(e, flags.Error):
      sys.exit(f"error: {e}")
    if not isinstance(e, (AttributeError, KeyError)):
      raise
    while isinstance(e, (AttributeError, KeyError)) and e.args and isinstance(
        e.args[0], BaseException):
      e = e.args[0]
    key, _, hint = str(e.args[0] if e.args else e).partition("\n")
    key = key.strip("'\\")
    where = [a for a in argv if a.startswith("--config.") and
             (f".{key}=" in a or f".{key}." in a)]
    if where and where[0].startswith(("--config.model.fusion.",
                                      "--config.model.encoders.")):
      hint += (" The keys of config.model.fusion and config.model.encoders.* "
               "are the attributes of the block or encoder the config names; "
               "name another one in the config-file argument, e.g. "
               "--config=configs/av_digits.py:fusion=cross_attention,image=vit")
    sys.exit(f"error: unknown config key {key!r} in "
             f"{where[0] if where else 'the --config overrides'}. {hint}".strip())


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
