"""Semantics of the feature- and decision-level fusion blocks.

The interface contract shared by every registered block is tested elsewhere;
here each block's own computation is checked against numpy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.fusion.early import EarlyFusion
from mmjax.models.fusion.gated import GatedFusion
from mmjax.models.fusion.late import LateFusion, vote_combine
from mmjax.models.fusion.pooling import MaxFusion, MeanFusion, SumFusion
from mmjax.models.fusion.tensor import LowRankTensorFusion, TensorFusion
from mmjax.models.fusion.weighted import WeightedFusion

TOKENS = {"audio": jax.random.normal(jax.random.key(0), (4, 3, 5)),
          "image": jax.random.normal(jax.random.key(1), (4, 2, 6))}
MASKS = {"audio": jnp.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 1]], bool),
         "image": jnp.array([[1, 1], [1, 0], [1, 1], [0, 1]], bool)}
# Rows: both present, audio only, image only, none.
PRESENT = {"audio": jnp.array([1.0, 1.0, 0.0, 0.0]),
           "image": jnp.array([1.0, 0.0, 1.0, 0.0])}
ORDER = ("audio", "image")
IS_PRESENT = np.stack([np.asarray(PRESENT[m]) > 0.5 for m in ORDER], axis=1)


def run(block, params=None, present=PRESENT, train=False):
  """(params, FusionOutput, intermediates) of `block` on the test batch."""
  if params is None:
    params = block.init(jax.random.key(2), TOKENS, MASKS, present, train=False)
  out, state = block.apply(params, TOKENS, MASKS, present, train=train,
                           mutable=["intermediates"])
  return params, out, jax.tree.map(lambda x: np.asarray(x[0]),
                                   state["intermediates"],
                                   is_leaf=lambda x: isinstance(x, tuple))


def pooled(m):
  """numpy masked mean of modality m, zeros where it is missing."""
  x, valid = np.asarray(TOKENS[m]), np.asarray(MASKS[m])
  mean = (x * valid[..., None]).sum(1) / np.maximum(valid.sum(1), 1)[:, None]
  return mean * (np.asarray(PRESENT[m]) > 0.5)[:, None]


def dense(params, name, x):
  layer = params["params"][name]
  out = x @ np.asarray(layer["kernel"])
  return out + np.asarray(layer["bias"]) if "bias" in layer else out


def test_early_fusion_concatenates_pooled_features_with_zero_slots():
  _, out, _ = run(EarlyFusion(num_classes=3, hidden_dims=()))
  expected = np.concatenate([pooled(m) for m in ORDER], axis=1)
  np.testing.assert_allclose(out.embedding, expected, atol=1e-6)


def test_sum_is_sum_of_present_projections():
  params, out, _ = run(SumFusion(num_classes=3, dim=8))
  expected = sum(dense(params, f"{m}_projection", pooled(m))
                 * IS_PRESENT[:, i, None] for i, m in enumerate(ORDER))
  np.testing.assert_allclose(out.embedding, expected, atol=1e-5)


def test_mean_is_sum_over_number_present():
  params, summed, _ = run(SumFusion(num_classes=3, dim=8))
  _, mean, _ = run(MeanFusion(num_classes=3, dim=8), params)
  count = np.maximum(IS_PRESENT.sum(1), 1)[:, None]
  np.testing.assert_allclose(mean.embedding, summed.embedding / count,
                             atol=1e-5)
  np.testing.assert_array_equal(mean.embedding[3], 0.0)


def test_max_is_elementwise_max_of_present_projections():
  params, out, _ = run(MaxFusion(num_classes=3, dim=8))
  audio, image = (dense(params, f"{m}_projection", pooled(m)) for m in ORDER)
  np.testing.assert_allclose(out.embedding[0], np.maximum(audio, image)[0],
                             atol=1e-5)
  np.testing.assert_allclose(out.embedding[1], audio[1], atol=1e-5)
  np.testing.assert_allclose(out.embedding[2], image[2], atol=1e-5)
  np.testing.assert_array_equal(out.embedding[3], 0.0)


def test_weighted_modality_weights_renormalise_over_present():
  block = WeightedFusion(num_classes=3, dim=8)
  params, _, _ = run(block)
  params = jax.tree.map(lambda x: x, params)
  params["params"]["modality_weight_logits"] = jnp.array([1.0, -0.5])
  _, out, inter = run(block, params)
  weights = inter["modality_weights"]
  both = np.exp([1.0, -0.5]) / np.exp([1.0, -0.5]).sum()
  np.testing.assert_allclose(weights, [both, [1, 0], [0, 1], [0, 0]],
                             atol=1e-6)
  projections = [dense(params, f"{m}_projection", pooled(m)) for m in ORDER]
  expected = sum(weights[:, i, None] * p for i, p in enumerate(projections))
  np.testing.assert_allclose(out.embedding, expected, atol=1e-5)


def layer_norm(params, name, x):
  """numpy LayerNorm (Flax's eps 1e-6)."""
  layer = params["params"][name]
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  y = (x - mean) / np.sqrt(var + 1e-6) * np.asarray(layer["scale"]) + (
      np.asarray(layer["bias"]))
  return y


@pytest.mark.parametrize("input_norm", [True, False])
def test_gmu_gates_sum_to_one_over_present_modalities(input_norm):
  block = GatedFusion(num_classes=3, dim=8, input_norm=input_norm)
  params = block.init(jax.random.key(2), TOKENS, MASKS, PRESENT, train=False)
  # Norm parameters other than their initial 1 and 0.
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.5 if "input_norm" in jax.tree_util.keystr(path)
      else x, params)
  params, out, inter = run(block, params)
  gates = inter["gates"]
  assert gates.shape == (4, 2, 8)
  np.testing.assert_allclose(gates[:3].sum(1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(gates[1, 1], 0.0)
  np.testing.assert_array_equal(gates[2, 0], 0.0)
  np.testing.assert_array_equal(gates[3], 0.0)
  features = {m: pooled(m) for m in ORDER}
  if input_norm:
    features = {m: layer_norm(params, f"{m}_input_norm", x)
                for m, x in features.items()}
  # Two modalities: the softmax gate is the paper's sigmoid of the difference.
  logits = dense(params, "gate", np.concatenate([features[m] for m in ORDER],
                                                axis=1)).reshape(4, 2, 8)
  np.testing.assert_allclose(
      gates[0, 0], 1 / (1 + np.exp(logits[0, 1] - logits[0, 0])), atol=1e-5)
  hidden = np.stack([np.tanh(dense(params, f"{m}_projection", features[m]))
                     for m in ORDER], axis=1)
  np.testing.assert_allclose(out.embedding, (gates * hidden).sum(1),
                             atol=1e-5)


def test_gmu_input_norm_makes_it_invariant_to_a_modality_scale():
  """Scaling one modality's tokens by 100 changes nothing with input_norm
  (an encoder whose output grows cannot saturate the GMU) and everything
  without it."""
  scaled = {**TOKENS, "audio": TOKENS["audio"] * 100.0}
  for input_norm, same in ((True, True), (False, False)):
    block = GatedFusion(num_classes=3, dim=8, input_norm=input_norm)
    params = block.init(jax.random.key(2), TOKENS, MASKS, PRESENT, train=False)
    a = block.apply(params, TOKENS, MASKS, PRESENT, train=False).embedding
    b = block.apply(params, scaled, MASKS, PRESENT, train=False).embedding
    assert np.allclose(a, b, atol=1e-4) == same


def log_softmax(x):
  return np.asarray(jax.nn.log_softmax(jnp.asarray(x)))


def test_vote_majority_beats_confidence():
  # Two weak votes for class 0 against one confident vote for class 1, which
  # has the larger summed probability.
  logits = jnp.array([[[0.3, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 9.0, 0.0]]])
  out = np.asarray(vote_combine(logits, jnp.ones((1, 3), bool)))
  assert out.argmax() == 0
  probs = np.exp(log_softmax(logits[0])).sum(0)
  score = np.array([2.0, 1.0, 0.0]) + probs / 4
  np.testing.assert_allclose(out[0], np.log(score / score.sum()), atol=1e-5)


def test_vote_tie_broken_by_summed_probabilities():
  logits = jnp.array([[[2.0, 0.0], [0.0, 1.0]],
                      [[1.0, 0.0], [0.0, 2.0]]])
  out = np.asarray(vote_combine(logits, jnp.ones((2, 2), bool)))
  np.testing.assert_array_equal(out.argmax(-1), [0, 1])


def test_vote_missing_modality_does_not_vote():
  # Present: a confident vote for 0 and a weak one for 1 (a tie broken
  # towards 0); the missing modality's vote for 1 would make 1 the majority.
  logits = jnp.array([[[5.0, 0.0], [0.0, 0.1], [0.0, 5.0]]])
  with_all = vote_combine(logits, jnp.ones((1, 3), bool))
  without = vote_combine(logits, jnp.array([[True, True, False]]))
  assert int(with_all.argmax()) == 1
  assert int(without.argmax()) == 0
  none = vote_combine(logits, jnp.zeros((1, 3), bool))
  np.testing.assert_array_equal(none, 0.0)


def stacked_modality_logits(out):
  return np.stack([np.asarray(out.modality_logits[m]) for m in ORDER], 1)


def present_mean(x):
  """numpy mean over the present modalities of `[batch, M, C]`."""
  total = (x * IS_PRESENT[..., None]).sum(1)
  return total / np.maximum(IS_PRESENT.sum(1), 1)[:, None]


def test_late_average_is_mean_of_present_logits():
  _, out, _ = run(LateFusion(num_classes=3, hidden_dims=(8,)))
  per = stacked_modality_logits(out)
  assert per[0].std() > 0
  np.testing.assert_allclose(out.logits, present_mean(per), atol=1e-5)
  np.testing.assert_array_equal(out.logits[3], 0.0)
  assert out.embedding.shape == (4, 16)
  np.testing.assert_array_equal(out.embedding[1, 8:], 0.0)


def test_late_weighted_modality_weights():
  block = LateFusion(num_classes=3, hidden_dims=(8,), combine="weighted")
  params, _, _ = run(block)
  params = jax.tree.map(lambda x: x, params)
  params["params"]["modality_weight_logits"] = jnp.array([0.0, 1.0])
  _, out, inter = run(block, params)
  weights = inter["modality_weights"]
  both = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
  np.testing.assert_allclose(weights, [both, [1, 0], [0, 1], [0, 0]],
                             atol=1e-6)
  per = stacked_modality_logits(out)
  np.testing.assert_allclose(out.logits, (weights[..., None] * per).sum(1),
                             atol=1e-5)


def test_late_vote_uses_vote_at_eval_and_log_prob_mean_in_training():
  block = LateFusion(num_classes=3, hidden_dims=(8,), combine="vote")
  params, out, _ = run(block)
  per = stacked_modality_logits(out)
  np.testing.assert_allclose(
      out.logits, vote_combine(jnp.asarray(per), jnp.asarray(IS_PRESENT)),
      atol=1e-6)
  _, trained, _ = run(block, params, train=True)
  np.testing.assert_allclose(trained.logits, present_mean(log_softmax(per)),
                             atol=1e-5)


def test_late_unknown_combine():
  with pytest.raises(ValueError, match="combine"):
    run(LateFusion(num_classes=3, combine="median"))


def factor(params, m, i):
  z = dense(params, f"{m}_factor", pooled(m)) * IS_PRESENT[:, i, None]
  return np.concatenate([z, np.ones((4, 1))], axis=1)


def test_tensor_fusion_is_flattened_outer_product():
  params, out, _ = run(TensorFusion(num_classes=3, factor_dim=4,
                                    hidden_dims=()))
  z_audio, z_image = (factor(params, m, i) for i, m in enumerate(ORDER))
  expected = np.einsum("bi,bj->bij", z_audio, z_image).reshape(4, 25)
  np.testing.assert_allclose(out.embedding, expected, atol=1e-5)
  # A missing modality leaves the other's terms and the constant.
  assert out.embedding[3, -1] == 1.0
  np.testing.assert_array_equal(out.embedding[3, :-1], 0.0)


def test_low_rank_fusion_equals_full_tensor_contraction():
  block = LowRankTensorFusion(num_classes=3, rank=3, factor_dim=4, dim=8)
  params, _, _ = run(block)
  params = jax.tree.map(lambda x: x, params)
  params["params"]["bias"] = jax.random.normal(jax.random.key(3), (8,))
  _, out, _ = run(block, params)
  w_audio, w_image = (np.asarray(params["params"][f"{m}_factor_weight"],
                                 np.float64) for m in ORDER)
  full = np.einsum("rid,rjd->ijd", w_audio, w_image)
  z_audio, z_image = (factor(params, m, i) for i, m in enumerate(ORDER))
  expected = (np.einsum("bi,bj,ijd->bd", z_audio, z_image, full)
              + np.asarray(params["params"]["bias"]))
  np.testing.assert_allclose(out.embedding, expected, rtol=1e-5, atol=1e-5)
