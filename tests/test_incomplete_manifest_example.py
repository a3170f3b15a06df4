"""docs/data.md's incomplete-rows example, on the real data, through the
command line: the page's manifest (empty image, audio and text cells in
different rows) written with MNIST digits and FSDD recordings from
../shared/data (read only; the recordings through a link), then `python
launch.py --config configs/manifest.py:manifest=...` for a few steps of
tiny settings, with modality dropout and auxiliary heads on.

Checked: the stored presence flags are the page's empty cells; the printed
and the page's per-modality counts agree, and so do results.json's
per-subset counts and the page's rows; a missing modality is masked, not
read: the trained model's evaluation and a train step are the same
whatever the missing modality's content holds, and the evaluation changes
when a present modality's content does.
"""

import gzip
import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest

from configs import manifest as manifest_config
from mmjax import objectives
from mmjax.data.builders.manifest import builder as manifest
from mmjax.evaluation import restore
from mmjax.train import optim, steps
from tests import user_copy as user
from tests.train.conftest import as_flags

PAGE = user.REPO_ROOT / "docs" / "data.md"
MODALITIES = ("image", "audio", "text")
TINY = {
    "data.image_size": 16,
    "model.encoders.image.features": (8, 16),
    "model.encoders.image.embed_dim": 16,
    "model.encoders.audio.features": (8, 16),
    "model.encoders.audio.embed_dim": 16,
    "model.encoders.text.embed_dim": 16,
    "optimizer.warmup_steps": 1,
    "batch_size": 8, "eval_batch_size": 8, "num_train_steps": 2,
    "log_every_steps": 2, "eval_every_steps": 2, "checkpoint_every_steps": 2,
    "eval_splits": ("train", "validation"),
    "aux_loss_weight": 0.5, "modality_dropout.image": 0.5,
}


def page_rows():
  """The header and rows of the page's CSV block with empty cells."""
  blocks = [b for b in user.page_blocks(PAGE, "csv")
            if re.search(r"(^|,),", b, re.M)]
  assert len(blocks) == 1, blocks
  header, *rows = [line.split(",") for line in blocks[0].splitlines()]
  return header, rows


def page_counts_line() -> str:
  (line,) = [l for b in user.page_blocks(PAGE, "text") for l in b.splitlines()
             if l.startswith("Examples with each modality:")]
  return line


def subset_counts(header, rows, split):
  """`{"image+audio": n, ...}` of the page's rows of `split`."""
  counts = {}
  for row in rows:
    cells = dict(zip(header, row))
    if cells["split"] == split:
      name = "+".join(m for m in MODALITIES if cells[m])
      counts[name] = counts.get(name, 0) + 1
  return counts


@pytest.fixture(scope="module")
def run(tmp_path_factory, real_manual_dir):
  """(manifest, data_dir, workdir, launch.py's process) of the page's
  manifest, trained for a few steps."""
  root = tmp_path_factory.mktemp("incomplete_example")
  header, rows = page_rows()
  with gzip.open(real_manual_dir / "mnist" /
                 "t10k-first8000-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
  with gzip.open(real_manual_dir / "mnist" /
                 "t10k-first8000-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
  (root / "digits").mkdir()
  (root / "fsdd").symlink_to(real_manual_dir / "fsdd")
  for row in rows:
    cells = dict(zip(header, row))
    digit = ["zero", "one"].index(cells["label"])
    if cells["image"]:  # digits/<i>.png: MNIST image i, of the row's digit
      index = int(re.fullmatch(r"digits/(\d+)\.png", cells["image"])[1])
      assert labels[index] == digit, cells
      PIL.Image.fromarray(images[index]).save(root / cells["image"])
    if cells["audio"]:
      assert (root / cells["audio"]).name.startswith(f"{digit}_"), cells
  path = root / "data.csv"
  path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
  data_dir, workdir = root / "tfds", root / "run"
  proc = subprocess.run(
      [sys.executable, "launch.py", "--config",
       f"configs/manifest.py:manifest={path}", "--workdir", str(workdir),
       # One device, as the checks here: their steps load its compilations
       # from the tests' cache (tests/conftest.py).
       "--cpu_devices=1", *as_flags({**TINY, "data.data_dir": data_dir})],
      cwd=user.REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return path, data_dir, workdir, proc


def test_counts_printed_and_in_results_are_the_pages(run):
  _, _, workdir, proc = run
  assert page_counts_line() in proc.stdout, proc.stdout
  header, rows = page_rows()
  results = json.loads((workdir / "results.json").read_text())
  for split in ("train", "validation"):
    expected = subset_counts(header, rows, split)
    got = {k[len("num_examples_"):]: v for k, v in results[split].items()
           if k.startswith("num_examples_")}
    assert got == expected, split
    assert results[split]["num_examples"] == sum(expected.values())
    for name in expected:
      assert 0.0 <= results[split][f"accuracy_{name}"] <= 1.0


def test_presence_flags_are_the_empty_cells(run):
  path, data_dir, _, _ = run
  builder = manifest.get_builder(path, data_dir, image_size=16)
  header, rows = page_rows()
  seen = 0
  for split in builder.info.splits:
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      cells = dict(zip(header, rows[int(ex["row"]) - 1]))
      assert cells["split"] == split
      assert {m: bool(ex["present"][m]) for m in MODALITIES} == {
          m: bool(cells[m]) for m in MODALITIES}
      seen += 1
  assert seen == len(rows)


def _replace(batch, rows, modality, rng):
  """`batch` with `modality`'s content of `rows` (bool [batch]) replaced
  by noise."""
  out = dict(batch)
  if modality == "text":
    ids, mask = batch["text"]["token_ids"], batch["text"]["token_mask"]
    out["text"] = {
        "token_ids": np.where(rows[:, None], rng.integers(
            3, 200, ids.shape).astype(ids.dtype), ids),
        "token_mask": np.where(rows[:, None], True, mask)}
  else:
    x = batch[modality]
    noise = rng.normal(0.0, 3.0, x.shape).astype(x.dtype)
    out[modality] = np.where(rows.reshape((-1,) + (1,) * (x.ndim - 1)),
                             noise, x)
  return out


def test_a_missing_modality_is_masked_not_read(run):
  path, data_dir, workdir, _ = run
  config = manifest_config.get_config(f"manifest={path}")
  with config.unlocked():
    for key, value in {**TINY, "data.data_dir": str(data_dir)}.items():
      *parents, leaf = key.split(".")
      node = config
      for p in parents:
        node = node[p]
      node[leaf] = value
  objective = objectives.resolve(config)
  _, state, manager, evaluator, _ = restore.restore_for_evaluation(
      config, workdir, objective)
  manager.close()
  batch = next(evaluator.local_batches("train"))  # the 8 train rows
  schedule = optim.learning_rate_schedule(config.optimizer,
                                          config.num_train_steps)
  train_step = steps.make_train_step_from_config(evaluator.mesh, config,
                                                 objective, schedule)

  def step_metrics(b):
    """The train step's loss, gradient norm and auxiliary losses on `b`
    (with modality dropout): they show what the step reads."""
    _, out = train_step(jax.tree.map(jnp.copy, state),
                        {k: v for k, v in b.items() if k != "mask"})
    return {k: float(v) for k, v in out.items() if k != "learning_rate"}

  stepped = step_metrics(batch)
  assert {"aux_loss_image", "aux_loss_audio", "aux_loss_text"} <= set(stepped)

  def evaluate(m, rows):
    """The evaluation of the train rows with `m`'s content of the rows
    that `rows(present flags)` selects replaced by noise."""
    return evaluator.evaluate(state, "train", corrupt=lambda _, b: _replace(
        b, rows(b["present"][m]), m, np.random.default_rng(1)))[0]

  loss = evaluator.evaluate(state, "train")[0]["loss"]
  for m in MODALITIES:
    lacking = batch["present"][m] == 0
    assert 0 < lacking.sum() < len(lacking), m  # the page has both
    assert evaluate(m, lambda p: p == 0)["loss"] == pytest.approx(
        loss, abs=1e-6), m
    other = step_metrics(_replace(batch, lacking, m,
                                  np.random.default_rng(2)))
    assert other == pytest.approx(stepped, abs=1e-6), m
    # The test can fail: the content of the rows that have `m` is read.
    assert abs(evaluate(m, lambda p: p > 0)["loss"] - loss) > 1e-4, m
    read = step_metrics(_replace(batch, ~lacking, m, np.random.default_rng(2)))
    assert abs(read["loss"] - stepped["loss"]) > 1e-4, m
