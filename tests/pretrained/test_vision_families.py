"""The "vit" and "clip_vision" families beyond the shared parity test: the
other checkpoint layouts they read (a classification head beside "vit.", a
`CLIPVisionModel` with and without "vision_model."), the errors of a
checkpoint that does not fit, and the `vit` encoder's unchanged defaults."""

import flax
import jax
import numpy as np
import pytest

from mmjax.pretrained import load as pretrained_load
from mmjax.models.encoders.image import ViT
from mmjax.models.registries import ENCODERS, split_options
from mmjax.pretrained.weight_map import WeightError
from tests.pretrained import spec_clip_vision, spec_vit

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

ATOL = 1e-4


def load(directory, x=None, **overrides):
  """(tokens, params) of the `vit` encoder loaded from `directory`."""
  config = pretrained_load.pretrained_encoder_config(str(directory), "vit",
                                                     **overrides).to_dict()
  kwargs, _ = split_options(config)
  name = kwargs.pop("name")
  encoder = ENCODERS.get(name)(**kwargs)
  x = spec_vit.mmjax_inputs() if x is None else x
  abstract = jax.eval_shape(
      lambda: encoder.init(jax.random.key(0), x, train=False))["params"]
  params = pretrained_load.load_hf_encoder(str(directory),
                                           {"name": name, **kwargs},
                                           abstract, "test")
  tokens, _ = encoder.apply({"params": params}, x, train=False)
  return np.asarray(tokens), params


def _save(model, directory):
  torch.manual_seed(0)
  spec_vit.perturb(model, torch)
  model.save_pretrained(directory)
  return directory


@pytest.mark.parametrize("with_projection", [False, True])
def test_clip_vision_model_checkpoints_load(with_projection, tmp_path):
  """`CLIPVisionModel` (model_type "clip_vision_model", no prefix in
  transformers 5) and `CLIPVisionModelWithProjection` ("vision_model.",
  `visual_projection` beside it) give the reference outputs too."""
  torch.manual_seed(0)
  spec_clip_vision.build_vision_model(tmp_path, with_projection)
  reference = spec_clip_vision.reference(tmp_path)
  tokens, _ = load(tmp_path, pool="all")
  np.testing.assert_allclose(tokens, reference["last_hidden_state"], atol=ATOL)
  pooled, _ = load(tmp_path, pool="cls", pooler="layer_norm")
  np.testing.assert_allclose(pooled[:, 0], reference["pooled"], atol=ATOL)


def test_full_clip_checkpoint_fixes_the_vision_tower_attributes(tmp_path):
  torch.manual_seed(0)
  spec_clip_vision.build(tmp_path)
  config = pretrained_load.pretrained_encoder_config(str(tmp_path), "vit")
  assert (config.hidden_dim, config.num_layers, config.num_heads,
          config.mlp_dim, tuple(config.patch_size)) == (32, 2, 4, 32, (8, 8))
  assert (config.activation, config.layer_norm_epsilon, config.patch_bias,
          config.pre_norm, config.final_norm) == ("quick_gelu", 1e-5, False,
                                                  True, False)


def test_vit_classifier_checkpoint_loads_without_its_head(tmp_path):
  """`ViTForImageClassification`: weights under "vit.", a `classifier`
  beside them (ignored) and no pooler (pooler "dense_tanh" then fails
  naming the missing pooler)."""
  torch.manual_seed(0)
  model = transformers.ViTForImageClassification(
      transformers.ViTConfig(**spec_vit.TINY, num_labels=3)).eval()
  _save(model, tmp_path)
  with torch.no_grad():
    reference = model.vit(
        pixel_values=spec_vit.torch_inputs()).last_hidden_state
  tokens, _ = load(tmp_path, pool="all")
  np.testing.assert_allclose(tokens, reference.numpy(), atol=ATOL)
  cls, _ = load(tmp_path, pool="cls")  # no pooler: the normed CLS token
  np.testing.assert_allclose(cls[:, 0], reference[:, 0].numpy(), atol=ATOL)
  with pytest.raises(WeightError, match="transformer/pooler/kernel"):
    load(tmp_path, pool="cls", pooler="dense_tanh")


def test_mismatched_image_size_names_the_position_embedding(tmp_path):
  torch.manual_seed(0)
  spec_vit.build(tmp_path)
  with pytest.raises(WeightError, match=r"embeddings\.position_embeddings.*"
                     r"\(1, 17, 32\).*\(1, 5, 32\)"):
    load(tmp_path, spec_vit.mmjax_inputs(size=16), pool="all")


def test_unsupported_vit_configs_are_named(tmp_path):
  torch.manual_seed(0)
  spec_vit.build(tmp_path / "no_qkv_bias", qkv_bias=False)
  with pytest.raises(ValueError, match="qkv_bias"):
    pretrained_load.pretrained_encoder_config(str(tmp_path / "no_qkv_bias"),
                                              "vit")
  spec_vit.build(tmp_path / "silu", hidden_act="silu")
  with pytest.raises(ValueError, match="hidden_act='silu'"):
    pretrained_load.pretrained_encoder_config(str(tmp_path / "silu"), "vit")


def test_an_encoder_config_that_differs_from_the_checkpoint_is_named(tmp_path):
  torch.manual_seed(0)
  spec_clip_vision.build(tmp_path)
  config = pretrained_load.pretrained_encoder_config(str(tmp_path), "vit",
                                                     pool="all").to_dict()
  kwargs, _ = split_options(config)
  kwargs["final_norm"] = True
  with pytest.raises(ValueError, match=r"test\.final_norm=True, the "
                     r"checkpoint has False"):
    pretrained_load.load_hf_encoder(str(tmp_path), kwargs, {}, "test")


@pytest.mark.parametrize("pool", ["none", "cls", "mean"])
def test_vit_defaults_keep_their_parameters(pool):
  """The attributes added for pretrained towers leave mmjax's own ViT (and
  so its configs and checkpoints) as it was."""
  model = ViT(hidden_dim=8, num_layers=1, num_heads=2, mlp_dim=16, pool=pool)
  x = np.zeros((1, 8, 8, 3), np.float32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), x,
                                             train=False))["params"]
  layer = ["attention/query/kernel", "attention/query/bias",
           "attention/key/kernel", "attention/key/bias",
           "attention/value/kernel", "attention/value/bias",
           "attention/out/kernel", "attention/out/bias",
           "attention_norm/scale", "attention_norm/bias", "mlp/fc1/kernel",
           "mlp/fc1/bias", "mlp/fc2/kernel", "mlp/fc2/bias",
           "mlp_norm/scale", "mlp_norm/bias"]
  want = {"transformer/patch_embedding/kernel": (4, 4, 3, 8),
          "transformer/patch_embedding/bias": (8,),
          "transformer/position/embedding": (1, 4 + (pool == "cls"), 8),
          "transformer/encoder/final_norm/scale": (8,),
          "transformer/encoder/final_norm/bias": (8,)}
  want.update({f"transformer/encoder/layer_0/{p}": None for p in layer})
  if pool == "cls":
    want["transformer/cls"] = (1, 1, 8)
  got = flax.traverse_util.flatten_dict(params, sep="/")
  assert sorted(got) == sorted(want)
  for path, shape in want.items():
    if shape is not None:
      assert got[path].shape == shape, path
