"""docs/pretrained.md, "Zero-shot with a pretrained CLIP from a local
directory", run as written against a tiny random CLIP (no network): the
zero-shot recipe gives `transformers.CLIPModel`'s logits on the same files,
and the fine-tuning recipe trains and evaluates a few steps on the prepared
emoji data."""

import pathlib
import re

import numpy as np
import PIL.Image
import pytest

from mmjax.train import loop
from tests.conftest import EMOJI_TINY
from tests.pretrained import clip_checkpoint
from tests.user_copy import page_blocks

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "pretrained.md"
SECTION = "## Zero-shot with a pretrained CLIP from a local directory"
PAGE_CHECKPOINT = '"/ckpt/clip"'


def section_blocks():
  """The section's python blocks: saving (needs the hub), zero-shot,
  fine-tuning."""
  text = PAGE.read_text()
  assert SECTION in text
  section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
  blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
  assert len(blocks) == 3, len(blocks)
  return blocks


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  directory = tmp_path_factory.mktemp("clip_docs")
  torch.manual_seed(5)
  clip_checkpoint.build(directory, num_layers=1)  # compiles faster
  return directory


def run(code, checkpoint):
  assert PAGE_CHECKPOINT in code
  namespace = {}
  exec(compile(code.replace(PAGE_CHECKPOINT, repr(str(checkpoint))),  # pylint: disable=exec-used
               str(PAGE), "exec"), namespace)
  return namespace


def test_the_saving_block_names_what_the_recipe_reads():
  save, _, _ = section_blocks()
  compile(save, str(PAGE), "exec")
  assert "CLIPModel" in save and "CLIPProcessor" in save
  assert page_blocks(PAGE, "python")[-3:] == list(section_blocks())


def test_zero_shot_recipe_gives_transformers_logits(checkpoint, tmp_path,
                                                    monkeypatch, capsys):
  _, zero_shot, _ = section_blocks()
  monkeypatch.chdir(tmp_path)
  rng = np.random.default_rng(0)
  files = ["photo_1.png", "photo_2.png"]
  for name, shape in zip(files, [(40, 56, 3), (33, 33, 4)]):
    PIL.Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(name)
  namespace = run(zero_shot, checkpoint)
  assert capsys.readouterr().out.count(".png ") == 2

  model = transformers.CLIPModel.from_pretrained(str(checkpoint)).eval()
  processor = transformers.CLIPProcessor.from_pretrained(str(checkpoint))
  prompts = [f"a photo of a {c}." for c in namespace["classes"]]
  inputs = processor(
      text=prompts, images=[PIL.Image.open(f).convert("RGB") for f in files],
      padding="max_length", truncation=True,
      max_length=clip_checkpoint.MAX_LENGTH,
      return_tensors="pt")
  with torch.no_grad():
    expected = model(**inputs).logits_per_image.numpy()
  assert namespace["logits"].shape == (2, 3)
  assert np.abs(np.asarray(namespace["logits"]) - expected).max() <= 1e-4


def test_fine_tuning_recipe_trains(checkpoint, prepared_emoji_dir,
                                   real_manual_dir, tmp_path, monkeypatch):
  """The recipe's config with the tiny prepared emoji data and 2 steps."""
  _, _, fine_tune = section_blocks()
  results = {}
  train_and_evaluate = loop.train_and_evaluate

  def short_run(config, workdir):
    del workdir
    with config.unlocked():
      config.data.data_dir = str(prepared_emoji_dir)
      config.data.manual_dir = str(real_manual_dir)
      config.data.image_size = EMOJI_TINY["image_size"]
      config.data.vocab_size = EMOJI_TINY["vocab_size"]
      config.batch_size = 8
      config.num_train_steps = 2
      config.optimizer.warmup_steps = 1
      config.eval_splits = ("validation",)
      config.input.shuffle_buffer_size = 16  # streams: no whole-split cache
    results.update(train_and_evaluate(config, str(tmp_path / "run")))
    return results

  monkeypatch.setattr(loop, "train_and_evaluate", short_run)
  run(fine_tune, checkpoint)
  assert 0.0 <= results["validation"]["zero_shot_accuracy"] <= 1.0
  assert (tmp_path / "run" / "checkpoints" / "2").is_dir()
