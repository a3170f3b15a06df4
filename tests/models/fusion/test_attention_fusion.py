import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.layers.masking import valid_mask
from mmjax.models.registries import FUSION, module_defaults

SMALL = dict(dim=16, num_layers=1, num_heads=2, mlp_dim=32)
BATCH, T_AUDIO, T_IMAGE = 3, 4, 5
TOKENS = {"audio": jax.random.normal(jax.random.key(0), (BATCH, T_AUDIO, 10)),
          "image": jax.random.normal(jax.random.key(1), (BATCH, T_IMAGE, 6))}
MASKS = {"audio": jnp.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool),
         "image": jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1],
                             [1, 1, 0, 0, 0]], bool)}
ALL = {m: jnp.ones(BATCH) for m in TOKENS}
AUDIO_MISSING = {"audio": jnp.array([1.0, 0.0, 0.0]), "image": ALL["image"]}


def make(name, **overrides):
  return FUSION.get(name)(num_classes=7, **{**SMALL, **overrides})


def run(block, tokens=TOKENS, masks=MASKS, present=ALL, params=None):
  """(params, embedding, intermediates), jitted: eager Flax dispatches op by
  op and is several times slower on CPU at these shapes."""
  if params is None:
    params = jax.jit(lambda t, m, p: block.init(
        jax.random.key(2), t, m, p, train=False))(tokens, masks, present)
  out, state = jax.jit(lambda v, t, m, p: block.apply(
      v, t, m, p, train=False, mutable=["intermediates"]))(
          params, tokens, masks, present)
  return params, out.embedding, state["intermediates"]


def only(tree, m):
  return {k: v for k, v in tree.items() if k == m}


@pytest.mark.parametrize("name", ["self_attention", "cross_attention",
                                  "bottleneck"])
def test_defaults(name):
  defaults = module_defaults(FUSION.get(name))
  assert {k: defaults[k] for k in ("dim", "num_layers", "num_heads", "mlp_dim",
                                   "dropout_rate", "positional_embedding")} == (
      dict(dim=128, num_layers=2, num_heads=4, mlp_dim=256, dropout_rate=0.0,
           positional_embedding="learned"))


def test_cross_attention_maps_query_target_and_key_source():
  present = AUDIO_MISSING
  _, _, inter = run(make("cross_attention", num_layers=2), present=present)
  for target, source, t_q, t_k in [("image", "audio", T_IMAGE, T_AUDIO),
                                   ("audio", "image", T_AUDIO, T_IMAGE)]:
    keys = valid_mask(MASKS[source], present[source])
    for layer in ("layer_0", "layer_1"):
      (w,) = inter[f"{target}_from_{source}"][layer]["attention"][
          "attention_weights"]
      assert w.shape == (BATCH, 2, t_q, t_k)
      # Rows sum to 1 over the source's valid tokens (0 without any).
      np.testing.assert_allclose(w.sum(-1), jnp.broadcast_to(
          keys.any(1)[:, None, None], w.shape[:3]), atol=1e-5)
      np.testing.assert_array_equal(
          jnp.where(keys[:, None, None, :], 0.0, w), 0.0)
      assert (jnp.where(keys[:, None, None, :], w, 1.0) > 0).all()


@pytest.mark.parametrize("name", ["cross_attention", "bottleneck",
                                  "self_attention"])
def test_missing_modality_is_not_there(name):
  block = make(name, num_layers=2)
  # Large content in the missing audio must not matter either.
  tokens = dict(TOKENS, audio=TOKENS["audio"].at[1:].multiply(1e3))
  params, both, _ = run(block, tokens, present=AUDIO_MISSING)
  _, image_only, _ = run(block, only(tokens, "image"), only(MASKS, "image"),
                         only(AUDIO_MISSING, "image"), params)
  np.testing.assert_allclose(both[1:], image_only[1:], atol=1e-5)
  assert not np.allclose(both[0], image_only[0], atol=1e-3)


@pytest.mark.parametrize("num_layers", [0, 1, 2])
def test_bottleneck_is_the_only_path_between_modalities(num_layers):
  block = make("bottleneck", num_layers=num_layers)
  params, _, inter = run(block)
  changed = dict(TOKENS, audio=TOKENS["audio"] + 1.0)
  _, _, inter_changed = run(block, changed, params=params)
  (image, ), (image_changed, ) = (inter["image_embedding"],
                                  inter_changed["image_embedding"])
  # A modality reads in layer i the bottleneck the others wrote in layer
  # i - 1, so information crosses from the second fusion layer on.
  if num_layers < 2:
    np.testing.assert_array_equal(image, image_changed)
  else:
    assert (jnp.abs(image - image_changed).max(-1) > 1e-4).all()


def test_bottleneck_tokens_are_shared_and_attended():
  block = make("bottleneck", num_bottleneck_tokens=3)
  params, _, inter = run(block, present=AUDIO_MISSING)
  assert params["params"]["bottleneck"].shape == (1, 3, 16)
  for m, t in (("audio", T_AUDIO), ("image", T_IMAGE)):
    (w,) = inter[f"{m}_layer_0"]["attention"]["attention_weights"]
    keys = valid_mask(MASKS[m], AUDIO_MISSING[m])
    assert w.shape == (BATCH, 2, t + 3, t + 3)
    np.testing.assert_array_equal(
        jnp.where(keys[:, None, None, :], 0.0, w[..., :t]), 0.0)
    assert (w[..., t:] > 0).all()


def test_self_attention_cls_attends_only_to_valid_tokens():
  present = AUDIO_MISSING
  _, embedding, inter = run(make("self_attention", num_layers=2),
                            present=present)
  keys = jnp.concatenate(
      [jnp.ones((BATCH, 1), bool)]
      + [valid_mask(MASKS[m], present[m]) for m in ("audio", "image")], 1)
  for layer in ("layer_0", "layer_1"):
    (w,) = inter["encoder"][layer]["attention"]["attention_weights"]
    assert w.shape == (BATCH, 2, keys.shape[1], keys.shape[1])
    cls = w[:, :, 0]
    np.testing.assert_array_equal(jnp.where(keys[:, None], 0.0, cls), 0.0)
    assert (jnp.where(keys[:, None], cls, 1.0) > 0).all()
    np.testing.assert_allclose(cls.sum(-1), 1.0, atol=1e-5)
  assert embedding.shape == (BATCH, 16)
  (fused,) = inter["fused_embedding"]
  np.testing.assert_array_equal(fused, embedding)
