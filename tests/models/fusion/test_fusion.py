import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.fusion.early import EarlyFusion
from mmjax.models.fusion.late import LateFusion
from mmjax.models.registries import FUSION

TOKENS = {"audio": jax.random.normal(jax.random.key(0), (4, 3, 8)),
          "image": jax.random.normal(jax.random.key(1), (4, 5, 6))}
ALL = {m: jnp.ones(4) for m in TOKENS}


def init_apply(block, tokens=TOKENS, present=ALL, params=None):
  if params is None:
    params = block.init(jax.random.key(2), tokens, present, train=False)
  return params, block.apply(params, tokens, present, train=False)


def test_registry_names():
  assert FUSION.get("early_fusion") is EarlyFusion
  assert FUSION.get("late_fusion") is LateFusion


@pytest.mark.parametrize("cls", [EarlyFusion, LateFusion])
def test_output_shape_and_dropout(cls):
  block = cls(num_classes=10, hidden_dims=(16,), dropout_rate=0.5)
  params, logits = init_apply(block)
  assert logits.shape == (4, 10)
  train_logits = block.apply(params, TOKENS, ALL, train=True,
                             rngs={"dropout": jax.random.key(3)})
  assert not np.allclose(train_logits, logits)


def test_early_fusion_ignores_missing_modality_content():
  block = EarlyFusion(num_classes=3, hidden_dims=(16,))
  present = {"audio": jnp.array([1.0, 1.0, 0.0, 0.0]), "image": jnp.ones(4)}
  params, ref = init_apply(block, present=present)
  scrambled = dict(TOKENS, audio=TOKENS["audio"] * 100.0)
  _, out = init_apply(block, scrambled, present, params)
  np.testing.assert_allclose(out[2:], ref[2:], atol=1e-5)
  assert not np.allclose(out[:2], ref[:2])


def test_late_fusion_is_mean_of_unimodal_logits():
  block = LateFusion(num_classes=3, hidden_dims=(16,))
  params, both = init_apply(block)
  only = {}
  for m in TOKENS:
    present = {k: jnp.full(4, float(k == m)) for k in TOKENS}
    _, only[m] = init_apply(block, present=present, params=params)
  np.testing.assert_allclose(both, (only["audio"] + only["image"]) / 2,
                             atol=1e-5)
