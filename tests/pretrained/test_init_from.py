"""`init_from`: encoders from another mmjax run, and the errors of a wrong
source (`mmjax.pretrained.load`)."""

import json

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import av_digits
from mmjax import checkpoint, parallel
from mmjax.models.multimodal import build_classifier
from mmjax.pretrained.weight_map import WeightError
from mmjax.train import optim
from mmjax.train.state import create_train_state
from mmjax.pretrained import load as pretrained_load

SHAPES = {"image": jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32),
          "audio": jax.ShapeDtypeStruct((2, 8000), jnp.float32)}


def tiny_config(modalities=("image", "audio"), audio_features=(4, 8), seed=0):
  c = av_digits.get_config()
  c.modalities = modalities
  c.seed = seed
  c.model.encoders.image.features = (4, 8)
  c.model.encoders.image.embed_dim = 8
  c.model.encoders.audio.features = audio_features
  c.model.encoders.audio.embed_dim = 8
  c.model.fusion.hidden_dims = (8,)
  return c


def init_state(c):
  mesh = parallel.make_mesh()
  tx = optim.make_optimizer(c.optimizer, c.num_train_steps,
                            optim.parameter_groups(c))
  return create_train_state(build_classifier(c), {m: SHAPES[m] for m in c.modalities},
                            tx, c.seed, parallel.replicated(mesh))


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
  """A workdir holding the step-7 checkpoint of an audio-only model."""
  workdir = tmp_path_factory.mktemp("audio_only")
  c = tiny_config(modalities=("audio",), seed=3)
  state = init_state(c).replace(step=7)
  manager = checkpoint.make_manager(workdir / "checkpoints", keep=1)
  checkpoint.save(manager, state)
  manager.wait_until_finished()
  manager.close()
  (workdir / "config.json").write_text(json.dumps(json.loads(c.to_json_best_effort())))
  return workdir, jax.device_get(state.params)


def test_encoder_from_an_mmjax_run(audio_run):
  workdir, saved = audio_run
  c = tiny_config()
  c.model.encoders.audio.init_from = str(workdir)
  state = jax.device_get(init_state(c))
  params, _, loaded = pretrained_load.initialize_encoders(c, state.params,
                                                          state.batch_stats)
  assert loaded == {"audio": str(workdir)}
  jax.tree.map(np.testing.assert_array_equal, params["audio_encoder"],
               saved["audio_encoder"])
  # The rest keeps its own initialisation (the saved run had seed 3).
  jax.tree.map(np.testing.assert_array_equal, params["image_encoder"],
               state.params["image_encoder"])
  assert not np.array_equal(
      flax.traverse_util.flatten_dict(state.params["audio_encoder"])[
          ("ConvBlock_0", "Conv_0", "kernel")],
      params["audio_encoder"]["ConvBlock_0"]["Conv_0"]["kernel"])


def test_mismatched_encoder_from_an_mmjax_run_names_the_paths(audio_run):
  workdir, _ = audio_run
  c = tiny_config(audio_features=(4, 16))
  c.model.encoders.audio.init_from = str(workdir)
  state = jax.device_get(init_state(c))
  with pytest.raises(WeightError, match=r"config.model.encoders.audio.init_from"
                     r"(.|\n)*ConvBlock_1/Conv_0/kernel: \(3, 3, 4, 8\) in that run"):
    pretrained_load.initialize_encoders(c, state.params, state.batch_stats)


def test_a_run_without_that_encoder(audio_run):
  workdir, _ = audio_run
  c = tiny_config()
  c.model.encoders.image.init_from = str(workdir)
  state = jax.device_get(init_state(c))
  with pytest.raises(WeightError, match="has no image_encoder"):
    pretrained_load.initialize_encoders(c, state.params, state.batch_stats)


def test_a_missing_source_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  c = tiny_config()
  c.model.encoders.audio.init_from = str(tmp_path / "nowhere")
  state = jax.device_get(init_state(c))
  with pytest.raises(FileNotFoundError, match="is not a directory.*save_pretrained"):
    pretrained_load.initialize_encoders(c, state.params, state.batch_stats)
  (tmp_path / "not_a_checkpoint").mkdir()
  c.model.encoders.audio.init_from = str(tmp_path / "not_a_checkpoint")
  with pytest.raises(FileNotFoundError, match="config.json is missing"):
    pretrained_load.initialize_encoders(c, state.params, state.batch_stats)


def test_unknown_encoder_options_are_still_errors():
  c = av_digits.get_config()
  assert c.model.encoders.audio.init_from == ""
  assert c.model.encoders.audio.freeze is False
  with pytest.raises(AttributeError):
    c.model.encoders.audio.init_form = "x"


def test_encoder_from_a_hugging_face_checkpoint(tmp_path):
  """`init_from` a `save_pretrained` ViT directory into av_digits' image
  encoder: the loaded parameters are the checkpoint's, through the config."""
  transformers = pytest.importorskip("transformers")
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  vit = transformers.ViTModel(transformers.ViTConfig(
      image_size=28, patch_size=7, num_channels=1, hidden_size=16,
      num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
      add_pooling_layer=False)
  vit.save_pretrained(tmp_path)
  c = tiny_config()
  c.model.encoders.image = pretrained_load.pretrained_encoder_config(
      str(tmp_path), "vit", pool="all", freeze=True)
  assert c.model.encoders.image.init_from == str(tmp_path)
  state = jax.device_get(init_state(c))
  params, _, loaded = pretrained_load.initialize_encoders(c, state.params,
                                                          state.batch_stats)
  assert loaded == {"image": str(tmp_path)}
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  weights = load_file(str(tmp_path / "model.safetensors"))
  np.testing.assert_array_equal(
      params["image_encoder"]["transformer"]["position"]["embedding"],
      weights["embeddings.position_embeddings"])
  np.testing.assert_array_equal(
      params["image_encoder"]["transformer"]["encoder"]["layer_0"]["mlp"][
          "fc1"]["kernel"], weights["encoder.layer.0.intermediate.dense.weight"].T)
  jax.tree.map(np.testing.assert_array_equal, params["audio_encoder"],
               state.params["audio_encoder"])
  # An attribute that differs from the checkpoint's is named.
  c.model.encoders.image.num_heads = 4
  state = jax.device_get(init_state(c))
  with pytest.raises(ValueError, match=r"config.model.encoders.image.num_heads=4, "
                     r"the checkpoint has 2"):
    pretrained_load.initialize_encoders(c, state.params, state.batch_stats)


def test_frame_encoder_image_encoder_from_an_image_run(tmp_path):
  """A video frame_encoder's per-frame CNN starts from an image-only run's
  image encoder; the rest of the video encoder keeps its initialisation."""
  from configs import av_digit_clips  # pylint: disable=g-import-not-at-top
  image = tiny_config(modalities=("image",), seed=5)
  state = init_state(image).replace(step=3)
  manager = checkpoint.make_manager(tmp_path / "checkpoints", keep=1)
  checkpoint.save(manager, state)
  manager.wait_until_finished()
  manager.close()
  (tmp_path / "config.json").write_text(image.to_json_best_effort())
  saved = jax.device_get(state.params)["image_encoder"]

  c = av_digit_clips.get_config("modalities=video")
  c.model.encoders.video.image_encoder.features = (4, 8)
  c.model.encoders.video.image_encoder.embed_dim = 8
  c.model.encoders.video.image_encoder.init_from = str(tmp_path)
  mesh = parallel.make_mesh()
  tx = optim.make_optimizer(c.optimizer, c.num_train_steps,
                            optim.parameter_groups(c))
  shapes = {"video": {
      "frames": jax.ShapeDtypeStruct((2, 8, 32, 32, 1), jnp.float32),
      "frame_mask": jax.ShapeDtypeStruct((2, 8), jnp.bool_)}}
  fresh = jax.device_get(create_train_state(
      build_classifier(c), shapes, tx, 0, parallel.replicated(mesh)))
  params, _, loaded = pretrained_load.initialize_encoders(c, fresh.params,
                                                          fresh.batch_stats)
  assert loaded == {"video.image_encoder": str(tmp_path)}
  jax.tree.map(np.testing.assert_array_equal,
               params["video_encoder"]["image_encoder"], saved)
  jax.tree.map(np.testing.assert_array_equal,
               params["video_encoder"]["frame_projection"],
               fresh.params["video_encoder"]["frame_projection"])
  c.model.encoders.video.image_encoder.features = (4, 16)
  other = jax.device_get(create_train_state(
      build_classifier(c), shapes, tx, 0, parallel.replicated(mesh)))
  with pytest.raises(WeightError, match="video.image_encoder.init_from"):
    pretrained_load.initialize_encoders(c, other.params, other.batch_stats)
