"""Images/s of the training input at real size, per CPU core: JPEG files
through the manifest path, with a ViT/CLIP augmentation.

1. Writes `--num_images` JPEG files of `--image_size` square (quality
   `--jpeg_quality`) and a manifest (`image,label`, 10 labels) to a
   temporary folder, from `--source`:
   - `emoji`: real pictures, the emoji of ../shared/data/emoji drawn with
     its Noto Color Emoji font (`mmjax.data.builders.emoji_sources.
     Renderer`) and upscaled (Lanczos); flat colours on white, which PNG
     compresses well: the easy case;
   - `noise`: uniform random pixels, which PNG cannot compress: the worst
     case for the stored images' size and decode time.
2. Prepares it as `multimodal_manifest` (`mmjax.data.builders.manifest`,
   images kept at their size), timed: this is where the JPEG files are
   decoded, once; the prepared TFRecords hold PNG (the builder's
   `tfds.features.Image(encoding_format="png")`), which training decodes.
3. For each `--cores` value k, in a subprocess pinned to k cores
   (`sched_setaffinity`, so tf.data's thread pool, one thread per usable
   core (`mmjax.data.pipeline._options`), and TensorFlow's own pools have k
   threads): `mmjax.data.pipeline.train_batches` (what launch.py trains
   on), streaming (`--shuffle_buffer_size`), pp `PP` (PNG decode,
   `random_resized_crop` to `--crop_size`, `random_flip`, CLIP's
   normalisation), `--batch_size` images a batch; `--warmup` batches
   untimed, then `--repeats` windows of `--batches` batches. Reports the
   median images/s and images/s per core.

Cores a device needs to keep up: ceil(X / (images/s per core)), X the
device's training throughput in images/s (`--device_images_per_s`).

  python benchmarks/input_pipeline.py --source emoji --cores 1,2 \\
      --device_images_per_s 4200 --write_section input_pipeline
"""

import json
import math
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags, logging

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

flags.DEFINE_enum("source", "emoji", ["emoji", "noise"], "What the JPEG "
                  "files show (see the module docstring).")
flags.DEFINE_integer("num_images", 2048, "JPEG files written.")
flags.DEFINE_integer("image_size", 256, "Side of the JPEG files (pixels).")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of the files.")
flags.DEFINE_integer("crop_size", 224, "Side of the training crops.")
flags.DEFINE_string("pp", None, "The images' pp spec instead of the "
                    "augmentation `pp_spec` (e.g. --pp= : the PNG decode "
                    "alone).")
flags.DEFINE_integer("batch_size", 256, "Images per batch.")
flags.DEFINE_integer("shuffle_buffer_size", 1024, "Streaming shuffle buffer "
                     "(examples); 0: the in-memory shuffle.")
flags.DEFINE_list("cores", ["1", "all"], "Core counts to measure ('all': "
                  "every core this process may use).")
flags.DEFINE_integer("warmup", 5, "Untimed batches first.")
flags.DEFINE_integer("batches", 20, "Batches per timed window.")
flags.DEFINE_integer("repeats", 3, "Timed windows.")
flags.DEFINE_bool("stages", False, "Also measure, on 1 core, each prefix "
                  "of the pp's ops (the PNG decode alone, then one op more "
                  "at a time).")
flags.DEFINE_float("device_images_per_s", 0.0, "X: one device's training "
                   "images/s, for the cores it needs (0: not derived).")
flags.DEFINE_string("device_images_per_s_source", "", "Where X comes from "
                    "(written with the figures).")
flags.DEFINE_string("manual_dir", str(REPO.parent / "shared" / "data"),
                    "The real data (read only): emoji/ for --source=emoji.")
flags.DEFINE_string("write_section", "", "Write the figures into this "
                    "section of benchmarks/RESULTS.md.")
# Internal: the measuring subprocess.
flags.DEFINE_string("measure", "", "JSON {data_dir, manifest, cores} "
                    "(internal: set by the parent process).")
FLAGS = flags.FLAGS

# OpenAI CLIP's pixel mean and std (its image processor's normalisation).
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def pp_spec(crop_size: int) -> str:
  """The train pp (or `--pp`)."""
  if FLAGS.pp is not None:
    return FLAGS.pp
  return (f"random_resized_crop({crop_size})|random_flip|value_range(0, 1)|"
          f"normalize({MEAN}, {STD})")


def write_images(folder: Path) -> Path:
  """The JPEG files and their manifest (`folder/data.csv`)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import PIL.Image  # pylint: disable=g-import-not-at-top
  (folder / "images").mkdir(parents=True)
  size = FLAGS.image_size
  if FLAGS.source == "emoji":
    from mmjax.data.builders import emoji_sources  # pylint: disable=g-import-not-at-top
    emoji_dir = Path(FLAGS.manual_dir) / "emoji"
    items = emoji_sources.parse_emoji_test(emoji_dir / "emoji-test.txt")
    render = emoji_sources.Renderer(emoji_dir / "NotoColorEmoji.ttf", size)
    pictures = (p for p in (render(it.emoji) for it in items) if p is not None)
    pictures = list(p for _, p in zip(range(FLAGS.num_images), pictures))
  else:
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (size, size, 3), np.uint8)
                for _ in range(FLAGS.num_images)]
  lines = ["image,label"]
  for i in range(FLAGS.num_images):
    name = f"images/{i}.jpg"
    PIL.Image.fromarray(pictures[i % len(pictures)]).save(
        folder / name, quality=FLAGS.jpeg_quality)
    lines.append(f"{name},class{i % 10}")
  (folder / "data.csv").write_text("\n".join(lines) + "\n")
  return folder / "data.csv"


def measure(spec: dict) -> dict:
  """In the pinned subprocess: images/s of `train_batches` (see the module
  docstring)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from mmjax.data import pipeline  # pylint: disable=g-import-not-at-top
  from mmjax.data.builders.manifest import builder as manifest_builder  # pylint: disable=g-import-not-at-top
  builder = manifest_builder.get_builder(spec["manifest"], spec["data_dir"])
  batches = pipeline.train_batches(
      builder, "train", modalities=("image",),
      pp={"image": pp_spec(FLAGS.crop_size)},
      global_batch_size=FLAGS.batch_size, seed=0,
      shuffle_buffer_size=FLAGS.shuffle_buffer_size)
  for _ in range(FLAGS.warmup):
    batch = next(batches)
  if FLAGS.pp is None:
    assert batch["image"].shape == (FLAGS.batch_size, FLAGS.crop_size,
                                    FLAGS.crop_size, 3), batch["image"].shape
    assert batch["image"].dtype == np.float32
  rates = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    for _ in range(FLAGS.batches):
      next(batches)
    rates.append(FLAGS.batches * FLAGS.batch_size /
                 (time.perf_counter() - start))
  return {"cores": len(os.sched_getaffinity(0)),
          "images_per_s": rates,
          "train_examples": builder.info.splits["train"].num_examples}


def run_pinned(cores: list, spec: dict, pp=None) -> dict:
  """`measure` in a subprocess allowed only `cores`, of the pp `pp` (None:
  `pp_spec`)."""
  pp = FLAGS.pp if pp is None else pp
  argv = [sys.executable, __file__, "--measure", json.dumps(spec)] + [
      f"--{name}={FLAGS[name].value}" for name in (
          "crop_size", "batch_size", "shuffle_buffer_size", "warmup",
          "batches", "repeats")] + ([] if pp is None else [f"--pp={pp}"])
  proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                        preexec_fn=lambda: os.sched_setaffinity(0, cores))
  if proc.returncode:
    raise RuntimeError(f"measuring on {len(cores)} core(s) failed:\n"
                       f"{proc.stderr[-4000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if FLAGS.measure:
    print(json.dumps(measure(json.loads(FLAGS.measure))))
    return
  import timing  # pylint: disable=g-import-not-at-top
  from mmjax.data.builders.manifest import builder as manifest_builder  # pylint: disable=g-import-not-at-top
  usable = sorted(os.sched_getaffinity(0))
  counts = [len(usable) if c == "all" else int(c) for c in FLAGS.cores]
  if any(not 1 <= c <= len(usable) for c in counts):
    raise app.UsageError(f"--cores {FLAGS.cores}: this process may use "
                         f"{len(usable)} cores")
  with tempfile.TemporaryDirectory() as tmp:
    manifest = write_images(Path(tmp) / "files")
    jpeg_bytes = sum(p.stat().st_size
                     for p in (Path(tmp) / "files" / "images").iterdir())
    start = time.perf_counter()
    builder = manifest_builder.get_builder(manifest, Path(tmp) / "tfds")
    prepare_s = time.perf_counter() - start
    record_bytes = sum(p.stat().st_size for p in Path(
        builder.data_dir).glob("*.tfrecord*"))
    spec = {"manifest": str(manifest), "data_dir": str(Path(tmp) / "tfds")}
    runs = []
    for k in dict.fromkeys(counts):
      run = run_pinned(usable[:k], spec)
      run["median_images_per_s"] = statistics.median(run["images_per_s"])
      run["images_per_s_per_core"] = run["median_images_per_s"] / k
      runs.append(run)
      print(f"{k} core(s): {run['median_images_per_s']:.0f} images/s "
            f"(windows: {', '.join(f'{r:.0f}' for r in run['images_per_s'])})"
            f", {run['images_per_s_per_core']:.0f} per core", flush=True)
    stages = {}
    if FLAGS.stages:
      ops = pp_spec(FLAGS.crop_size).split("|")
      for i in range(len(ops) + 1):
        prefix = "|".join(ops[:i])
        stages[prefix or "(decode only)"] = statistics.median(
            run_pinned(usable[:1], spec, pp=prefix)["images_per_s"])
        print(f"1 core, pp {prefix!r}: "
              f"{stages[prefix or '(decode only)']:.0f} images/s", flush=True)
  per_core = runs[-1]["images_per_s_per_core"]
  result = {
      "benchmark": "input_pipeline", "source": FLAGS.source,
      "num_images": FLAGS.num_images, "image_size": FLAGS.image_size,
      "jpeg_quality": FLAGS.jpeg_quality, "crop_size": FLAGS.crop_size,
      "batch_size": FLAGS.batch_size,
      "shuffle_buffer_size": FLAGS.shuffle_buffer_size,
      "pp": pp_spec(FLAGS.crop_size), "machine": timing.machine(),
      "jpeg_kib_per_image": round(jpeg_bytes / FLAGS.num_images / 1024, 1),
      "prepared_png_kib_per_image": round(
          record_bytes / FLAGS.num_images / 1024, 1),
      "prepare_images_per_s": round(FLAGS.num_images / prepare_s, 1),
      # Other work on the host slows the figures: the 1-minute load average
      # at the end (over the usable cores).
      "load_average_1min": round(os.getloadavg()[0], 2),
      "runs": runs, "stages_1_core_images_per_s": stages}
  if FLAGS.device_images_per_s:
    result["cores_per_device"] = math.ceil(
        FLAGS.device_images_per_s / per_core)
    print(f"At {FLAGS.device_images_per_s:g} images/s per device: "
          f"{result['cores_per_device']} cores per device "
          f"({per_core:.0f} images/s per core at {runs[-1]['cores']} cores)",
          flush=True)
  if FLAGS.write_section:
    write_section(result)
  print(json.dumps(result))


def write_section(r: dict) -> None:
  import timing  # pylint: disable=g-import-not-at-top
  rows = "\n".join(
      f"| {r['source']} | {run['cores']} | {run['median_images_per_s']:.0f} "
      f"({min(run['images_per_s']):.0f}-{max(run['images_per_s']):.0f}) | "
      f"{run['images_per_s_per_core']:.0f} |" for run in r["runs"])
  derived = ""
  if "cores_per_device" in r:
    derived = (f"\n\nAt X = {FLAGS.device_images_per_s:g} images/s per "
               f"device ({FLAGS.device_images_per_s_source or 'given'}): "
               f"**{r['cores_per_device']} cores per device**.")
  if r["stages_1_core_images_per_s"]:
    derived += (
        "\n\nOn 1 core, the pp's ops one at a time (images/s):\n\n"
        "| pp up to | images/s |\n|---|---|\n" + "\n".join(
            "| `" + k.replace("|", "\\|") + f"` | {v:.0f} |"
            for k, v in r["stages_1_core_images_per_s"].items()))
  command = (f"python benchmarks/input_pipeline.py --source {r['source']} "
             f"--cores {','.join(FLAGS.cores)}")
  if FLAGS.stages:
    command += " --stages"
  if FLAGS.device_images_per_s:
    command += f" --device_images_per_s {FLAGS.device_images_per_s:g}"
  timing.write_section(f"{FLAGS.write_section}_{r['source']}", (
      f"`{command}` ({r['machine']}): {r['num_images']} JPEG "
      f"files {r['image_size']}x{r['image_size']} (quality "
      f"{r['jpeg_quality']}, {r['jpeg_kib_per_image']} KiB each), prepared "
      f"at {r['prepare_images_per_s']} images/s (JPEG decode, PNG encode; "
      f"{r['prepared_png_kib_per_image']} KiB per image in the TFRecords); "
      f"training input (`mmjax.data.pipeline.train_batches`): batch "
      f"{r['batch_size']}, streaming buffer {r['shuffle_buffer_size']}, pp "
      f"`{r['pp']}`; 1-minute load "
      f"average at the end {r['load_average_1min']}.\n\n"
      "| source | cores | images/s (median; min-max) | images/s per core |\n"
      "|---|---|---|---|\n" + rows + derived))


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
