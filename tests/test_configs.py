"""Every config in configs/: its arguments, its keys, and a smoke run.

Each config file is trained for a few steps on the real data through the
one train loop; every registered fusion block and encoder can be named in
the config-file argument and gets its defaults as config keys.
"""

import importlib
import pathlib

import pytest

from configs import av_digit_clips, av_digits, base, emoji_subgroup
from mmjax import objectives
from mmjax.models.registries import (ENCODER_OPTIONS, ENCODERS, FUSION,
                                     module_config, module_defaults)
from mmjax.train import loop
from tests.conftest import CLIPS_TINY, EMOJI_TINY, MANIFEST_TINY
from tests.train.conftest import TINY_OVERRIDES

CONFIG_FILES = sorted(p.stem for p in (
    pathlib.Path(__file__).resolve().parents[1] / "configs").glob("*.py")
    if p.stem not in ("__init__", "base"))


def test_parse_arg():
  assert base.parse_arg(None, fusion="a", image="b") == {"fusion": "a", "image": "b"}
  assert base.parse_arg("x", fusion="a", image="b") == {"fusion": "x", "image": "b"}
  assert base.parse_arg("image=c,fusion=d", fusion="a", image="b") == {
      "fusion": "d", "image": "c"}
  with pytest.raises(ValueError, match="unknown key 'audo'"):
    base.parse_arg("audo=x", fusion="a")


@pytest.mark.parametrize("name", list(FUSION.names()))
def test_every_fusion_block_is_a_config(name):
  c = av_digits.get_config(f"fusion={name}")
  keys = set(c.model.fusion) - {"name"}
  assert keys == set(module_defaults(FUSION.get(name)))
  objectives.resolve(c).build_model(c)
  with pytest.raises(AttributeError):  # locked: unknown keys are errors
    c.model.fusion.not_an_attribute = 1


def test_clips_two_stage_recipe_argument():
  """`digits=<dir>` starts both CNNs from that fold's single-digit runs at a
  tenth of the learning rate; `fusion=time_aligned` steps per spoken digit."""
  c = av_digit_clips.get_config("fusion=time_aligned,digits=runs/d/official")
  assert c.model.encoders.video.image_encoder.init_from == "runs/d/official/image"
  assert c.model.encoders.audio.init_from == "runs/d/official/audio"
  for m in ("video", "audio"):
    assert c.model.encoders[m].learning_rate_scale == 0.1
  assert (c.model.fusion.step_seconds, c.model.fusion.num_layers) == (0.5, 2)
  plain = av_digit_clips.get_config("modalities=audio")
  assert plain.model.encoders.audio.init_from == ""
  assert plain.model.encoders.audio.learning_rate_scale == 1.0


# The config file that selects each modality's encoder by its argument.
CONFIG_OF_MODALITY = {"image": av_digits, "audio": av_digits,
                      "text": emoji_subgroup, "video": av_digit_clips}


@pytest.mark.parametrize("name", list(ENCODERS.names()))
def test_every_encoder_is_a_config(name):
  config = module_config(ENCODERS, name)
  assert set(config) - {"name"} == set(
      module_defaults(ENCODERS.get(name))) | set(ENCODER_OPTIONS)
  modality = ENCODERS.get(name).modality
  c = CONFIG_OF_MODALITY[modality].get_config(f"{modality}={name}")
  assert c.model.encoders[modality].name == name
  assert set(c.model.encoders[modality]) == set(config)
  objectives.resolve(c).build_model(c)


# Tiny sizes per config file, on top of the tiny training recipe.
_TINY_EMOJI = {
    "data.image_size": EMOJI_TINY["image_size"],
    "data.vocab_size": EMOJI_TINY["vocab_size"],
    "model.encoders.image.features": (8, 16),
    "model.encoders.image.embed_dim": 32,
    "model.encoders.text.vocab_size": EMOJI_TINY["vocab_size"],
    "model.encoders.text.embed_dim": 32,
}
TINY_MODELS = {
    "av_digits": {},
    "av_digit_clips": {
        "data.clips_per_pair": CLIPS_TINY["clips_per_pair"],
        # 4 frames of 16 x 16 (the smoke run compiles and evaluates 500 clips).
        "pp_train.example": "sample_clip(4, 4, frame_rate=8.0, mode='random')",
        "pp_eval.example": "sample_clip(4, 4, frame_rate=8.0, mode='center')",
        "pp_train.video": "video_value_range(0, 1)|video_resize(16)",
        "pp_eval.video": "video_value_range(0, 1)|video_resize(16)",
        "model.encoders.video.temporal": "mean",
        "model.fusion.num_self_layers": 0,
        "model.encoders.video.image_encoder.features": (8,),
        "model.encoders.video.image_encoder.embed_dim": 16,
        "model.encoders.video.dim": 16, "model.encoders.video.mlp_dim": 32,
        "model.encoders.audio.features": (8, 16),
        "model.encoders.audio.embed_dim": 16,
        "model.fusion.dim": 16, "model.fusion.mlp_dim": 32},
    "av_digits_transformer": {
        "model.encoders.image.hidden_dim": 16, "model.encoders.image.mlp_dim": 32,
        "model.encoders.image.num_layers": 1,
        "model.encoders.image.patch_size": (7, 7),
        "model.encoders.audio.hidden_dim": 16, "model.encoders.audio.mlp_dim": 32,
        "model.encoders.audio.num_layers": 1,
        "model.fusion.dim": 16, "model.fusion.mlp_dim": 32,
        "model.fusion.num_layers": 1},
    "emoji_subgroup": _TINY_EMOJI,
    "emoji_image_text": {**_TINY_EMOJI, "model.embed_dim": 16},
    # The tiny CLIP of tests/pretrained/clip_checkpoint.py is the model.
    "clip_emoji": {"data.image_size": EMOJI_TINY["image_size"],
                   "data.vocab_size": EMOJI_TINY["vocab_size"]},
    "manifest": {
        "data.image_size": 0,  # the tiny manifest's own 16 x 16
        "model.encoders.image.features": (8, 16),
        "model.encoders.image.embed_dim": 32,
        "model.encoders.audio.features": (8, 16),
        "model.encoders.audio.embed_dim": 32,
        "model.encoders.text.embed_dim": 32},
    "clip_b16": {},  # size=tiny (CONFIG_ARGS)
    "mbt_b16": {},
}
# Per dataset: the fixture that prepares it and its validation split's size.
PREPARED = {"av_digits": ("prepared_data_dir", 1000),
            "av_digit_clips": ("prepared_clips_dir", 500),
            "emoji_image_text": ("prepared_emoji_dir", 334),
            "multimodal_manifest": ("prepared_manifest_dir",
                                    MANIFEST_TINY["num_validation"])}
# Per config file that needs one: (the fixture whose value fills the
# config-file argument, the argument's format).
CONFIG_ARGS = {"manifest": ("tiny_manifest", "manifest={}"),
               "clip_emoji": ("tiny_clip_dir", "checkpoint={}"),
               # The real-size configs at their own tiny size: the code path
               # of CLIP ViT-B/16 and MBT-B/16 at a few thousand parameters.
               "clip_b16": ("tiny_manifest", "manifest={},size=tiny"),
               "mbt_b16": ("tiny_manifest", "manifest={},size=tiny")}


def _set(config, key, value):
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = value


@pytest.mark.parametrize("config_file", CONFIG_FILES)
def test_every_config_file_trains(config_file, request, tmp_path):
  assert config_file in TINY_MODELS, (
      f"configs/{config_file}.py has no tiny settings in TINY_MODELS")
  arg = None
  if config_file in CONFIG_ARGS:
    arg_fixture, arg_format = CONFIG_ARGS[config_file]
    arg = arg_format.format(request.getfixturevalue(arg_fixture))
  c = importlib.import_module(f"configs.{config_file}").get_config(arg)
  fixture, num_validation = PREPARED[c.data.name]
  overrides = {k: v for k, v in TINY_OVERRIDES.items()
               if not k.startswith("model.") and not (
                   k.startswith("modality_dropout.")
                   and k.split(".")[1] not in c.modalities)}
  overrides.update(TINY_MODELS[config_file])
  overrides.update({"data.data_dir": str(request.getfixturevalue(fixture)),
                    "num_train_steps": 4,
                    "eval_splits": ("validation",)})
  for key, value in overrides.items():
    _set(c, key, value)
  results = loop.train_and_evaluate(c, str(tmp_path))
  assert results["validation"]["num_examples"] == num_validation
  metric = "zero_shot_accuracy" if c.objective == "contrastive" else "accuracy"
  assert 0.0 <= results["validation"][metric] <= 1.0
  assert (tmp_path / "checkpoints" / "4").is_dir()
