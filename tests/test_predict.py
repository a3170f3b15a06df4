"""`--mode=predict`, `--mode=embed` and `mmjax.Predictor` (mmjax/predict):
new raw files, in another layout and format than the dataset builders read,
through a trained workdir give the evaluation's predictions, embeddings and
retrieval figures."""

import json
import jax
import librosa
import numpy as np
import PIL.Image
import pytest
import soundfile as sf

from configs import av_digits
from mmjax import objectives
from mmjax.data.builders import sources
from mmjax.data.errors import DataError
from mmjax.evaluation import restore
from mmjax.predict import cli
from mmjax.train import loop
from mmjax.workdir import configs as workdir_configs
from tests.conftest import REPO_ROOT, SHARED_DATA
from tests.test_workdir import _set, launch
from tests.train.conftest import TINY_OVERRIDES
from tests.user_copy import page_blocks

# Test examples written as rows: their recording as FLAC at the stored
# 8 kHz (lossless), then resampled to 16 kHz (not: soxr's anti-aliasing
# filter changes the samples near 4 kHz by up to a few hundred LSB).
EXACT, RESAMPLED = 8, 4
# 16 kHz rows: the largest change of a probability measured was 5.8e-4
# (fused) and 1.3e-3 (the audio head), 2026-12-06, from the resampling
# alone: the image head, which does not see the audio, stays within 1e-7.
RESAMPLED_ATOL = 2e-3


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, prepared_data_dir):
  """A tiny av_digits run with unimodal auxiliary heads, 12 steps."""
  config = av_digits.get_config()
  _set(config, {**TINY_OVERRIDES, "aux_loss_weight": 1.0,
                "data.data_dir": str(prepared_data_dir),
                "eval_splits": ("test",)})
  workdir = tmp_path_factory.mktemp("digits") / "run"
  loop.train_and_evaluate(config, workdir)
  return config, workdir


def _probabilities(state, inputs, present=None):
  logits, updates = state.apply_fn(state.variables(), inputs, present,
                                   train=False, mutable=["modality_logits"])
  heads = {m: np.asarray(jax.nn.softmax(v[0]))
           for m, v in updates["modality_logits"].items()}
  return np.asarray(jax.nn.softmax(logits)), heads


@pytest.fixture(scope="module")
def evaluated(digits_run):
  """The evaluation's own input of the first test examples (its restored
  state, its evaluator's batches) through the model: `{"all": (fused,
  heads), "image_only": (fused, heads)}` probabilities, and the examples."""
  config, workdir = digits_run
  builder, state, manager, evaluator, _ = restore.restore_for_evaluation(
      config, workdir, objectives.resolve(config))
  manager.close()
  batch = next(evaluator.local_batches("test"))
  n = EXACT + RESAMPLED
  inputs = {m: batch[m][:n] for m in config.modalities}
  image_only = {"image": np.ones(n, np.float32),
                "audio": np.zeros(n, np.float32)}
  examples = list(builder.as_dataset(split="test").take(n).as_numpy_iterator())
  return {"all": _probabilities(state, inputs),
          "image_only": _probabilities(state, inputs, image_only),
          "examples": examples}


@pytest.fixture(scope="module")
def digits_manifest(evaluated, tmp_path_factory):
  """Real MNIST images (PNG) and FSDD recordings (FLAC) of the first test
  examples in a layout of their own: `lists/new.csv` naming
  `../pictures/<label>/<k>.png` and `../sounds/<k>.flac`; then a row
  without its recording and a row whose recording is not audio (line 15)."""
  root = tmp_path_factory.mktemp("new_files")
  images, _ = sources.load_mnist(SHARED_DATA)
  lines = ["image,audio,label"]
  for k, example in enumerate(evaluated["examples"]):
    label = int(example["label"])
    picture = root / "pictures" / str(label) / f"{k}.png"
    picture.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(images[example["image_id"]]).save(picture)
    samples, rate = sf.read(SHARED_DATA / sources.FSDD_RECORDINGS /
                            example["recording"].decode())
    assert rate == 8000
    if k >= EXACT:
      samples, rate = librosa.resample(samples, orig_sr=8000,
                                       target_sr=16000,
                                       res_type="soxr_hq"), 16000
    (root / "sounds").mkdir(exist_ok=True)
    sf.write(root / "sounds" / f"{k}.flac", samples, rate, subtype="PCM_16")
    lines.append(f"../pictures/{label}/{k}.png,../sounds/{k}.flac,{label}")
  first = int(evaluated["examples"][0]["label"])
  lines.append(f"../pictures/{first}/0.png,,{first}")
  (root / "sounds" / "broken.flac").write_text("not a recording")
  lines.append(f"../pictures/{first}/0.png,../sounds/broken.flac,{first}")
  (root / "lists").mkdir()
  manifest = root / "lists" / "new.csv"
  manifest.write_text("\n".join(lines) + "\n")
  return manifest


def _vector(top, names):
  out = np.zeros(len(names))
  for entry in top:
    out[names.index(entry["label"])] = entry["probability"]
  return out


def test_predict_gives_the_evaluation_predictions(digits_run, evaluated,
                                                   digits_manifest):
  _, workdir = digits_run
  proc = launch("--workdir", str(workdir), "--mode=predict",
                f"--predict_manifest={digits_manifest}", "--skip_bad_rows",
                "--top_k=10")
  out_dir, = (workdir / "predictions").iterdir()
  assert str(out_dir) in proc.stdout
  records = [json.loads(line) for line in
             (out_dir / "predictions.jsonl").read_text().splitlines()]
  assert [r["line"] for r in records] == list(range(2, EXACT + RESAMPLED + 4))
  names = [str(d) for d in range(10)]
  fused, heads = evaluated["all"]
  for k, record in enumerate(records[:EXACT + RESAMPLED]):
    assert record["missing"] == [] and len(record["top_k"]) == 10
    probabilities = _vector(record["top_k"], names)
    assert probabilities.argmax() == fused[k].argmax(), k
    np.testing.assert_allclose(_vector(record["modalities"]["image"], names),
                               heads["image"][k], atol=1e-5)
    atol = 1e-5 if k < EXACT else RESAMPLED_ATOL
    np.testing.assert_allclose(probabilities, fused[k], atol=atol)
    np.testing.assert_allclose(_vector(record["modalities"]["audio"], names),
                               heads["audio"][k], atol=atol)

  # No recording: the prediction of the model told that the audio is
  # missing, which is not the prediction with the audio.
  missing, bad = records[-2:]
  assert missing["missing"] == ["audio"]
  assert list(missing["modalities"]) == ["image"]
  image_only, image_only_heads = evaluated["image_only"]
  np.testing.assert_allclose(_vector(missing["top_k"], names), image_only[0],
                             atol=1e-5)
  np.testing.assert_allclose(_vector(missing["modalities"]["image"], names),
                             image_only_heads["image"][0], atol=1e-5)
  assert np.abs(image_only[0] - fused[0]).max() > 1e-3

  assert set(bad) == {"row", "line", "input", "error"}
  assert f"{digits_manifest}, line 15 (row 14), column audio" in bad["error"]
  assert "broken.flac: cannot read it" in bad["error"]

  # The labelled rows' metrics, as evaluate writes them.
  results = json.loads((out_dir / "results.json").read_text())["manifest"]
  labels = [int(e["label"]) for e in evaluated["examples"]] + [
      int(evaluated["examples"][0]["label"])]
  predicted = [names.index(r["top_k"][0]["label"]) for r in records[:-1]]
  assert results["num_examples"] == len(labels) and results["num_errors"] == 1
  assert results["accuracy"] == pytest.approx(
      np.mean(np.equal(labels, predicted)))
  confusion = json.loads((out_dir / "confusion_manifest.json").read_text())
  assert np.asarray(confusion["matrix"]).sum() == len(labels)
  assert (out_dir / "confusion_manifest.png").exists()


def test_bad_row_without_skip_is_one_line_error(digits_run, digits_manifest):
  """What launch.py's `--mode=predict` calls (it prints a DataError as
  `error: <message>`, exit status 1)."""
  _, workdir = digits_run
  with pytest.raises(DataError) as raised:
    cli.run("predict", workdir_configs.read_config(workdir), workdir,
            str(digits_manifest))
  message = str(raised.value)
  assert "\n" not in message
  assert message.startswith(f"{digits_manifest}, line 15 (row 14), column "
                            f"audio: ")
  assert "broken.flac: cannot read it" in message


def test_docs_example_runs(digits_run, digits_manifest, tmp_path, capsys):
  """docs/running_experiments.md's Python example, on the tiny run."""
  _, workdir = digits_run
  folder = tmp_path / "new_inputs" / "digits"
  folder.mkdir(parents=True)
  rows = digits_manifest.read_text().splitlines()[1:]
  for name, column in (("7", rows[0]), ("2", rows[1])):
    image, audio, _ = column.split(",")
    (folder / f"{name}.png").write_bytes(
        (digits_manifest.parent / image).read_bytes())
    (folder / f"{name}.flac").write_bytes(
        (digits_manifest.parent / audio).read_bytes())
  page = REPO_ROOT / "docs" / "running_experiments.md"
  (code,) = [b for b in page_blocks(page, "python")
             if "Predictor.from_workdir" in b]
  assert '"runs/av_digits"' in code and '"new_inputs"' in code
  exec(code.replace('"runs/av_digits"', repr(str(workdir))).replace(  # pylint: disable=exec-used
      '"new_inputs"', repr(str(tmp_path / "new_inputs"))), {})
  printed = capsys.readouterr().out.splitlines()
  assert len(printed) == 2
  assert printed[0].endswith(" []") and printed[1].endswith(" ['audio']")


def _emoji_manifest(config, root):
  """The test split as `root/test.jsonl`: each emoji's picture as a PNG,
  the English name the evaluation reads and its subgroup; and
  `root/classes.txt`, the subgroup names."""
  from mmjax.data.builders import registry  # pylint: disable=g-import-not-at-top
  builder = registry.get_builder(config.data)
  names = builder.info.features["label"].names
  (root / "pictures").mkdir(parents=True)
  lines = []
  for k, example in enumerate(builder.as_dataset(split="test")
                              .as_numpy_iterator()):
    PIL.Image.fromarray(example["image"]).save(root / "pictures" / f"{k}.png")
    text = example["text"]
    locales = [l.decode() for l in text["locales"]]
    name = (text["names"][locales.index("en")] if "en" in locales
            else text["name_en"]).decode()
    lines.append(json.dumps({"image": f"pictures/{k}.png", "text": name,
                             "label": names[example["label"]]}))
  (root / "test.jsonl").write_text("\n".join(lines) + "\n")
  (root / "classes.txt").write_text("\n".join(names) + "\n")
  return root / "test.jsonl", root / "classes.txt", len(lines)


def test_emoji_embed_zero_shot_and_retrieval_equal_evaluation(tiny_emoji_run,
                                                              tmp_path):
  config, workdir = tiny_emoji_run
  manifest, classes, n = _emoji_manifest(config, tmp_path)
  evaluated = json.loads((workdir / "results.json").read_text())["test"]
  retrieval_keys = [k for k in evaluated if "_to_" in k]
  assert len(retrieval_keys) == 8

  launch("--workdir", str(workdir), "--mode=embed",
         f"--predict_manifest={manifest}")
  out_dir, = (workdir / "embeddings").iterdir()
  for m in ("image", "text"):
    vectors = np.load(out_dir / f"embeddings_{m}.npy")
    assert vectors.shape == (n, config.model.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0,
                               atol=1e-5)
  index = [json.loads(line) for line in
           (out_dir / "index.jsonl").read_text().splitlines()]
  assert [(e["image"], e["text"]) for e in index] == [(i, i) for i in range(n)]
  figures = json.loads((out_dir / "retrieval.json").read_text())["manifest"]
  assert figures["num_pairs"] == n == evaluated["num_examples"]
  for key in retrieval_keys:
    assert figures[key] == pytest.approx(evaluated[key], abs=1e-6), key

  # launch.py's --mode=predict --zero_shot_classes=..., in this process.
  out_dir = cli.run("predict", workdir_configs.read_config(workdir), workdir,
                    str(manifest), zero_shot_classes=str(classes))
  results = json.loads((out_dir / "results.json").read_text())["manifest"]
  for key in retrieval_keys + ["zero_shot_accuracy", "zero_shot_macro_f1"]:
    assert results[key] == pytest.approx(evaluated[key], abs=1e-6), key
  first = json.loads((out_dir / "predictions.jsonl").read_text()
                     .splitlines()[0])
  assert len(first["top_k"]) == 5
  assert sum(t["probability"] for t in first["top_k"]) <= 1.0
  assert (out_dir / "zero_shot_confusion_manifest.png").exists()
