"""A pretrained CLIP from a local directory through launch.py with no
training (configs/clip_emoji.py): zero-shot `--mode=predict` from a
class-name file and `--mode=embed` give the CLIP's own probabilities and
embeddings (`mmjax.pretrained.clip`, whose parity with
`transformers.CLIPModel` tests/pretrained/test_clip_model.py shows)."""

import json
import subprocess
import sys

import jax
import numpy as np
import PIL.Image

from configs import clip_emoji
from mmjax.predict import cli
from mmjax.pretrained import clip
from tests.conftest import REPO_ROOT

CLASSES = ["red square", "green circle", "blue star"]


def write_manifest(root):
  """Six pictures of different sizes with a label and a text each."""
  rng = np.random.default_rng(0)
  lines = ["image,text,label"]
  for i in range(6):
    pixels = rng.integers(0, 256, (30 + 7 * i, 40 - 3 * i, 3), np.uint8)
    PIL.Image.fromarray(pixels).save(root / f"{i}.png")
    lines.append(f"{i}.png,a picture number {i},{CLASSES[i % 3]}")
  (root / "data.csv").write_text("\n".join(lines) + "\n")
  (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
  return [np.asarray(PIL.Image.open(root / f"{i}.png")) for i in range(6)]


def test_zero_shot_predict_and_embed_with_no_training(tiny_clip_dir, tmp_path):
  pictures = write_manifest(tmp_path)
  model = clip.load_clip(str(tiny_clip_dir))
  images = clip.embed(model, clip.preprocess_images(str(tiny_clip_dir),
                                                    pictures), "image")
  prompts = clip.tokenize_texts(str(tiny_clip_dir),
                                [f"an emoji of {c}." for c in CLASSES])
  expected = np.asarray(jax.nn.softmax(clip.zero_shot_logits(
      model, images, clip.embed(model, prompts, "text")), axis=-1))

  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "launch.py",
       f"--config=configs/clip_emoji.py:checkpoint={tiny_clip_dir}",
       "--workdir", str(workdir), "--mode=predict", "--top_k=3",
       f"--predict_manifest={tmp_path / 'data.csv'}",
       f"--zero_shot_classes={tmp_path / 'classes.txt'}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out_dir, = (workdir / "predictions").iterdir()
  records = [json.loads(line) for line in
             (out_dir / "predictions.jsonl").read_text().splitlines()]
  assert len(records) == 6
  for row, record in zip(expected, records):
    got = {p["label"]: p["probability"] for p in record["top_k"]}
    np.testing.assert_allclose([got[c] for c in CLASSES], row, atol=1e-5)
  assert not (workdir / "checkpoints").exists()  # nothing was trained

  config = clip_emoji.get_config(f"checkpoint={tiny_clip_dir}")
  out_dir = cli.run("embed", config, workdir, str(tmp_path / "data.csv"))
  np.testing.assert_allclose(np.load(out_dir / "embeddings_image.npy"),
                             images, atol=1e-5)
  texts = clip.tokenize_texts(str(tiny_clip_dir),
                              [f"a picture number {i}" for i in range(6)])
  np.testing.assert_allclose(np.load(out_dir / "embeddings_text.npy"),
                             clip.embed(model, texts, "text"), atol=1e-5)
