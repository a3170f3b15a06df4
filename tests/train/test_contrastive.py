"""The contrastive objective: the dual-encoder model, the symmetric InfoNCE
loss over the global batch, retrieval and zero-shot metrics, and the one
train loop end to end on a tiny synthetic image-caption dataset."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import av_digits
from mmjax import objectives, parallel
from mmjax.evaluation import restore, retrieval, robustness
from mmjax.models.contrastive import (INIT_LOGIT_SCALE, ContrastiveModel,
                                      ContrastiveOutput)
from mmjax.objectives.classification import CLASSIFICATION
from mmjax.objectives.contrastive import CONTRASTIVE, contrastive_loss
from mmjax.train import config_checks, loop, losses
from tests.train import contrastive_data
from tests.conftest import xla_flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# A tiny image CNN and text Transformer, as `ContrastiveModel.encoders`.
TINY_ENCODERS = {
    "image": {"name": "cnn", "features": (4,), "embed_dim": 8},
    "text": {"name": "text_transformer", "vocab_size": 20, "hidden_dim": 8,
             "num_layers": 1, "num_heads": 2, "mlp_dim": 16, "max_length": 6},
}


def tiny_batch(n, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(2, 7, (n, 1))
  return {"image": rng.random((n, 8, 8, 3)).astype(np.float32),
          "text": {"token_ids": rng.integers(0, 20, (n, 6)).astype(np.int32),
                   "token_mask": np.arange(6)[None, :] < lengths}}


def tiny_model():
  return ContrastiveModel(modalities=("image", "text"), encoders=TINY_ENCODERS,
                          embed_dim=8)


def numpy_infonce(a, b, scale):
  """The symmetric InfoNCE loss written out, float64, one row at a time."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  n = len(a)
  logits = scale * np.array([[a[i] @ b[j] for j in range(n)] for i in range(n)])

  def ce(row, target):
    return math.log(sum(math.exp(x) for x in row)) - row[target]
  rows = sum(ce(logits[i], i) for i in range(n)) / n
  cols = sum(ce(logits[:, j], j) for j in range(n)) / n
  return (rows + cols) / 2


def normalised(rng, n, d):
  x = rng.normal(size=(n, d)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


# The config key.


def test_objective_key_in_configs_and_unknown_values_refused(tmp_path):
  assert objectives.OBJECTIVES.names() == ["classification", "contrastive"]
  for name in objectives.OBJECTIVES.names():
    assert objectives.OBJECTIVES.get(name).name == name
  c = av_digits.get_config()
  assert c.objective == "classification"
  assert objectives.resolve(c) is CLASSIFICATION
  with c.unlocked():
    del c["objective"]
  assert objectives.resolve(c) is CLASSIFICATION  # the default
  c = av_digits.get_config()
  assert c.model.embed_dim > 0 and c.zero_shot.template == "{}"
  c.objective = "ranking"
  message = r"config.objective must be one of \('classification', 'contrastive'\), got 'ranking'"
  with pytest.raises(ValueError, match=message):
    objectives.resolve(c)
  # Each entry point resolves it first, before anything is read or written.
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(c, workdir)
  with pytest.raises(ValueError, match=message):
    restore.evaluate_checkpoint(c, workdir)
  with pytest.raises(ValueError, match=message):
    robustness.evaluate_robustness(c, workdir)
  assert not workdir.exists()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("tokenizer")
  contrastive_data.build_tokenizer(directory)
  return directory


@pytest.mark.parametrize("key,value,message", [
    ("modality_dropout.image", 0.3, r"config.modality_dropout .* is for "
     r"config.objective='classification'"),
    ("aux_loss_weight", 1.0, r"config.aux_loss_weight=1.0 is for"),
    ("linear_probe", True, r"config.linear_probe is for"),
    ("zero_shot.template", "a photo", r"config.zero_shot.template must "
     r"contain one '\{\}'"),
    ("modalities", ("image",), r"needs exactly two modalities"),
])
def test_contrastive_config_refuses_classification_options(
    tokenizer_dir, tmp_path, key, value, message):
  def check(c):  # what the train loop checks
    config_checks.check(c)
    objectives.resolve(c).check_config(c)
  c = contrastive_data.tiny_config(tmp_path, tokenizer_dir)
  check(c)
  *parents, leaf = key.split(".")
  node = c
  for p in parents:
    node = node[p]
  node[leaf] = value
  with pytest.raises(ValueError, match=message):
    check(c)


# The model.


def test_model_embeddings_logit_scale_and_errors(tokenizer_dir, tmp_path):
  model = tiny_model()
  batch = tiny_batch(4)
  variables = model.init(jax.random.key(0), batch)
  assert set(variables["params"]) == {
      "image_encoder", "image_projection", "text_encoder", "text_projection",
      "logit_scale"}
  out = model.apply(variables, batch)
  assert isinstance(out, ContrastiveOutput)
  for m in ("image", "text"):
    assert out.embeddings[m].shape == (4, 8)
    assert out.embeddings[m].dtype == jnp.float32
    np.testing.assert_allclose(np.linalg.norm(out.embeddings[m], axis=1), 1.0,
                               rtol=1e-6)
    np.testing.assert_allclose(model.apply(variables, batch[m], m,
                                           method="embed"), out.embeddings[m])
  np.testing.assert_allclose(variables["params"]["logit_scale"],
                             math.log(1 / 0.07), rtol=1e-7)
  np.testing.assert_allclose(out.logit_scale, 1 / 0.07, rtol=1e-6)
  with pytest.raises(ValueError, match="no missing modalities"):
    model.apply(variables, batch, {"image": jnp.ones(4), "text": jnp.ones(4)})
  with pytest.raises(KeyError, match="batch has no 'text' input"):
    model.apply(variables, {"image": batch["image"]})
  with pytest.raises(ValueError, match="exactly two modalities"):
    ContrastiveModel(modalities=("image",), encoders=TINY_ENCODERS,
                     embed_dim=8).init(jax.random.key(0), batch)
  # config.objective picks the dual encoder.
  c = contrastive_data.tiny_config(tmp_path, tokenizer_dir)
  assert objectives.resolve(c) is CONTRASTIVE
  assert isinstance(CONTRASTIVE.build_model(c), ContrastiveModel)
  c.model.embed_dim = 0
  with pytest.raises(ValueError, match="config.model.embed_dim must be"):
    CONTRASTIVE.build_model(c)


# The loss.


def test_loss_equals_numpy_symmetric_infonce():
  rng = np.random.default_rng(0)
  a, b = normalised(rng, 6, 5), normalised(rng, 6, 5)
  loss, logits = losses.contrastive_loss(jnp.asarray(a), jnp.asarray(b),
                                         jnp.float32(7.5))
  expected = numpy_infonce(a, b, 7.5)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(logits, 7.5 * a @ b.T, rtol=1e-5, atol=1e-6)
  # The host-side split loss of the evaluation is the same quantity.
  np.testing.assert_allclose(retrieval.infonce_loss(a, b, 7.5, chunk_size=4),
                             expected, rtol=1e-12)
  # Swapping the modalities swaps the two directions: the same loss.
  np.testing.assert_allclose(
      losses.contrastive_loss(jnp.asarray(b), jnp.asarray(a), 7.5)[0], loss,
      rtol=1e-6)
  # Perfectly separated pairs at a large scale: loss -> 0.
  eye = np.eye(4, dtype=np.float32)
  assert float(losses.contrastive_loss(eye, eye, 100.0)[0]) < 1e-20


def test_train_step_loss_metrics_and_label_smoothing():
  rng = np.random.default_rng(1)
  a, b = normalised(rng, 5, 3), normalised(rng, 5, 3)
  out = ContrastiveOutput(embeddings={"image": jnp.asarray(a),
                                      "text": jnp.asarray(b)},
                          logit_scale=jnp.float32(4.0))
  loss, m = contrastive_loss(0.0, ("image", "text"))(out, {})
  np.testing.assert_allclose(loss, numpy_infonce(a, b, 4.0), rtol=1e-6)
  sims = a @ b.T
  np.testing.assert_allclose(m["accuracy_image_to_text"],
                             np.mean(sims.argmax(1) == np.arange(5)))
  np.testing.assert_allclose(m["accuracy_text_to_image"],
                             np.mean(sims.argmax(0) == np.arange(5)))
  np.testing.assert_allclose(m["temperature"], 0.25)
  # Label smoothing eps: targets (1 - eps) on the pair + eps / n everywhere.
  smoothed, _ = contrastive_loss(0.1, ("image", "text"))(out, {})
  logits = 4.0 * sims.astype(np.float64)
  targets = 0.9 * np.eye(5) + 0.1 / 5

  def ce(x):
    return np.mean(-(targets * (x - np.log(np.exp(x).sum(1, keepdims=True)))).sum(1))
  np.testing.assert_allclose(smoothed, (ce(logits) + ce(logits.T)) / 2,
                             rtol=1e-6)


def test_gradient_reaches_both_encoders_and_the_logit_scale():
  model = tiny_model()
  batch = tiny_batch(6)
  params = model.init(jax.random.key(0), batch)["params"]
  objective = contrastive_loss(0.0, ("image", "text"))

  def loss_fn(p):
    return objective(model.apply({"params": p}, batch), batch)[0]
  grad_fn = jax.jit(jax.grad(loss_fn))
  grads = grad_fn(params)
  for name in ("image_encoder", "text_encoder", "image_projection",
               "text_projection"):
    norm = float(optax.global_norm(grads[name]))
    assert norm > 1e-6, (name, norm)
  assert abs(float(grads["logit_scale"])) > 1e-6
  # Above CLIP's cap log(100) the scale is 100 and the parameter gets no
  # gradient.
  capped = dict(params, logit_scale=jnp.float32(math.log(200.0)))
  out = model.apply({"params": capped}, batch)
  np.testing.assert_allclose(out.logit_scale, 100.0, rtol=1e-6)
  assert float(grad_fn(capped)["logit_scale"]) == 0.0
  assert INIT_LOGIT_SCALE < math.log(100.0)


@pytest.fixture(scope="module")
def shapes_data_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tiny_shapes_tfds")
  contrastive_data.get_builder(data_dir)
  return data_dir


# The global batch over the mesh.

MULTI_DEVICE_SCRIPT = r"""
import json
import numpy as np
import jax
import optax
from jax.sharding import AxisType, Mesh
from mmjax import parallel
from mmjax.objectives.contrastive import contrastive_loss
from mmjax.train import losses, steps
from mmjax.train.state import create_train_state
from tests.train.test_contrastive import tiny_batch, tiny_model

assert jax.device_count() == 8, jax.devices()
model = tiny_model()
batch = dict(tiny_batch(16), label=np.zeros(16, np.int32))
shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                      {k: v for k, v in batch.items() if k != "label"})
out = {}
for devices in (1, 8):
  mesh = Mesh(np.array(jax.devices()[:devices]), ("data",),
              axis_types=(AxisType.Auto,))
  state = create_train_state(model, shapes, optax.sgd(0.5), 0,
                             parallel.replicated(mesh))
  step = steps.make_train_step(mesh, loss=contrastive_loss, seed=0,
                               label_smoothing=0.0,
                               schedule=optax.constant_schedule(0.5),
                               modalities=("image", "text"))
  global_batch = parallel.to_global(batch, mesh)
  hlo = step.lower(state, global_batch).compile().as_text()
  if devices == 8:
    # The loss of each device's 2 examples alone, averaged: what a step
    # with per-device negatives would report.
    emb = model.apply({"params": state.params}, batch)
    a, b = emb.embeddings["image"], emb.embeddings["text"]
    out["local_negatives_loss"] = float(np.mean([
        losses.contrastive_loss(a[i:i + 2], b[i:i + 2], emb.logit_scale)[0]
        for i in range(0, 16, 2)]))
    out["global_loss"] = float(losses.contrastive_loss(a, b, emb.logit_scale)[0])
  step_losses = []
  for _ in range(3):
    state, m = step(state, global_batch)
    step_losses.append(float(m["loss"]))
  out[devices] = {
      "losses": step_losses,
      "accuracy": float(m["accuracy_image_to_text"]),
      "all_gather": "all-gather" in hlo,
      "params": [np.asarray(x).ravel().tolist()
                 for x in jax.tree.leaves(state.params)]}
print("RESULT" + json.dumps(out))
"""

# Float32 sums in another order, 1 vs 8 CPU devices, 3 SGD steps (2026-11-26,
# jax 0.10.2): the losses differed by at most 2.0e-7 relative, the
# parameters by at most 2.0e-6 of their leaf's largest magnitude (the key
# bias, whose gradient is 0 up to rounding, aside: ~1e-8 absolute). A step
# with per-device negatives (2 examples each) would report 1.02 nats instead
# of the global batch's 3.52.
LOSS_RTOL = 1e-5
PARAMS_RTOL = 2e-5


def test_negatives_are_the_global_batch_on_8_devices():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=8"))
  proc = subprocess.run([sys.executable, "-c", MULTI_DEVICE_SCRIPT],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  one, eight = out["1"], out["8"]
  # XLA gathers the other devices' embeddings for the similarity matrix.
  assert eight["all_gather"] and not one["all_gather"]
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=LOSS_RTOL)
  assert eight["losses"][0] == pytest.approx(out["global_loss"], rel=1e-5)
  assert abs(out["local_negatives_loss"] - out["global_loss"]) > 1.0
  assert eight["losses"][-1] < eight["losses"][0]
  for x, y in zip(one["params"], eight["params"]):
    x, y = np.asarray(x), np.asarray(y)
    assert np.max(np.abs(x - y)) <= PARAMS_RTOL * max(1.0, np.max(np.abs(x)))


# End to end through the one train loop.


def read_metrics(workdir, split):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["split"] == split]


# Measured on CPU (2026-11-26, jax 0.10.2, 1 device): after 200 steps of
# 32 examples, test recall@1 0.344 (image->text) and 0.422 (text->image),
# recall@5 1.0 both ways, median rank 2, zero-shot colour accuracy 0.953;
# chance is 1/64 = 0.016 (recall@1), 5/64 (recall@5), 0.25 (zero-shot). The
# bounds are ~10x chance for recall@1 and far above chance for the others.
RECALL_AT_1_BOUND = 0.15
RECALL_AT_5_BOUND = 0.5
ZERO_SHOT_BOUND = 0.6


def test_train_and_evaluate_end_to_end(shapes_data_dir, tokenizer_dir,
                                       tmp_path):
  config = contrastive_data.tiny_config(shapes_data_dir, tokenizer_dir)
  workdir = tmp_path / "run"
  results = loop.train_and_evaluate(config, workdir)

  assert set(results) == {"validation", "test"}
  test = results["test"]
  assert test["num_examples"] == 64  # 96 rows evaluated, 32 of them padding
  for direction in ("image_to_text", "text_to_image"):
    assert test[f"{direction}_recall_at_1"] > RECALL_AT_1_BOUND, test
    assert test[f"{direction}_recall_at_5"] > RECALL_AT_5_BOUND, test
    assert (test[f"{direction}_recall_at_1"] <= test[f"{direction}_recall_at_5"]
            <= test[f"{direction}_recall_at_10"])
    assert 1 <= test[f"{direction}_median_rank"] <= 64
  assert test["zero_shot_accuracy"] > ZERO_SHOT_BOUND, test
  assert 0 < test["zero_shot_macro_f1"] <= 1
  assert test["loss"] < math.log(64)

  train = read_metrics(workdir, "train")
  assert [r["step"] for r in train] == [50, 100, 150, 200]
  assert {"loss", "logit_scale", "temperature", "accuracy_image_to_text",
          "accuracy_text_to_image", "learning_rate", "grad_norm"} <= set(train[0])
  assert train[-1]["loss"] < train[0]["loss"] - 0.5, train
  # Means over the logging window: mean(1 / s) is close to 1 / mean(s).
  assert train[-1]["temperature"] == pytest.approx(
      1 / train[-1]["logit_scale"], rel=1e-3)
  assert [r["step"] for r in read_metrics(workdir, "validation")] == [100]
  assert read_metrics(workdir, "final_test")[0]["image_to_text_recall_at_1"] \
      == test["image_to_text_recall_at_1"]
  assert json.loads((workdir / "results.json").read_text()) == results
  cm = json.loads((workdir / "zero_shot_confusion_test.json").read_text())
  assert cm["classes"] == list(contrastive_data.COLOURS)
  assert np.sum(cm["matrix"]) == 64
  assert (workdir / "zero_shot_confusion_test.png").stat().st_size > 1000

  # Running again resumes from the final checkpoint: nothing to train, the
  # same evaluation.
  again = loop.train_and_evaluate(config, workdir)
  assert again == results
  assert json.loads((workdir / "run_info.json").read_text())[
      "resumed_from_step"] == 200

  # --mode=evaluate restores the checkpoint; without padding (eval batches
  # of 64) the metrics are the same.
  config.eval_batch_size = 64
  out_dir = restore.evaluate_checkpoint(config, workdir)
  other = json.loads((out_dir / "results.json").read_text())
  for key, value in test.items():
    assert other["test"][key] == pytest.approx(value, rel=1e-5), key

  # --mode=robustness is for classifiers.
  with pytest.raises(ValueError, match="--mode=robustness .* config.objective="
                     "'contrastive' is not supported"):
    robustness.evaluate_robustness(config, workdir)
  evaluator = CONTRASTIVE.make_evaluator(
      contrastive_data.get_builder(shapes_data_dir), config,
      parallel.make_mesh())
  assert evaluator.zero_shot == ("image", "text")
  with pytest.raises(ValueError, match="missing-modality and corruption"):
    evaluator.evaluate(None, "test", present={"image": 0.0})
