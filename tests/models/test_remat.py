"""`remat`: rematerialisation changes neither parameters nor results.

Every registered encoder and fusion block with a `remat` key is checked
traced, not compiled (compilation is most of the suite's time): the
parameter tree is the same with `remat="full"` as without, and every layer
(a Transformer layer, one per `attention` parameter subtree; a residual
block, one per subtree with `conv1` and `norm1`) is one `jax.checkpoint`.
Each policy is checked once, on a small Transformer stack: the checkpoint
carries the named `jax.checkpoint_policies` policy, and outputs and
gradients equal those without remat within float32 rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.layers.attention import TransformerEncoder
from mmjax.models.layers.remat import REMAT_POLICIES
from tests.models.stack_entries import entries, entry_id, init_and_apply

POLICIES = [name for name in REMAT_POLICIES if name != "none"]
ENTRIES = entries("remat")


def checkpoint_policies(jaxpr):
  """The policies of the `jax.checkpoint`s (primitive `remat2`) in a jaxpr,
  its sub-jaxprs included."""
  out = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "remat2":
      out.append(eqn.params["policy"])
    for param in eqn.params.values():
      sub = getattr(param, "jaxpr", param)
      if hasattr(sub, "eqns"):
        out += checkpoint_policies(sub)
  return out


def layers(params):
  """The number of Transformer layers and residual blocks in a parameter
  tree."""
  if not isinstance(params, dict):
    return 0
  own = "attention" in params or {"conv1", "norm1"} <= set(params)
  return own + sum(layers(v) for v in params.values())


def test_every_attention_encoder_and_fusion_block_has_the_key():
  names = {name for _, name in ENTRIES}
  assert {"vit", "spectrogram_transformer", "text_transformer",
          "whisper_encoder", "frame_encoder", "vivit", "self_attention",
          "cross_attention", "bottleneck", "time_aligned", "resnet"} <= names


@pytest.mark.parametrize("entry", ENTRIES, ids=entry_id)
def test_remat_keeps_parameters_and_wraps_every_layer(entry):
  """Init runs the forward pass: its jaxpr holds the checkpoints, its
  result the parameter tree."""
  init, _ = init_and_apply(entry)
  shapes = jax.eval_shape(init, jax.random.key(0))
  count = layers(shapes["params"])
  assert count
  init, _ = init_and_apply(entry, remat="full")
  jaxpr, got = jax.make_jaxpr(init, return_shape=True)(jax.random.key(0))
  assert got == shapes
  policies = checkpoint_policies(jaxpr.jaxpr)
  assert policies == [REMAT_POLICIES["full"]] * count, policies


def test_the_names_are_jax_checkpoint_policies():
  policies = jax.checkpoint_policies
  assert REMAT_POLICIES == {
      "none": None, "full": policies.nothing_saveable,
      "dots": policies.dots_with_no_batch_dims_saveable}


def test_unknown_policy_is_an_error_listing_the_known_ones():
  init, _ = init_and_apply(ENTRIES[0], remat="some")
  with pytest.raises(ValueError, match=r"remat must be one of \('none', "
                     r"'full', 'dots'\), got 'some'"):
    jax.eval_shape(init, jax.random.key(0))


def test_remat_outputs_and_gradients_equal_no_remat():
  """A masked layer with dropout in training, under each policy: one
  checkpoint with that policy, and the same outputs and gradients (dropout
  masks included) as without. One compilation for all policies."""
  x = jax.random.normal(jax.random.key(0), (2, 4, 8))
  mask = jnp.arange(4)[None] < jnp.array([[4], [3]])
  stack = lambda remat: TransformerEncoder(1, 2, 16, dropout_rate=0.2,
                                           remat=remat)

  def loss(variables, remat):
    out = stack(remat).apply(variables, x, mask, train=True,
                             rngs={"dropout": jax.random.key(2)})
    return jnp.sum(out * jnp.arange(8)), out

  @jax.jit
  def run():
    variables = stack("none").init(jax.random.key(1), x, mask, train=False)
    return {name: jax.grad(loss, has_aux=True)(variables, name)
            for name in REMAT_POLICIES}
  variables = jax.eval_shape(
      lambda: stack("none").init(jax.random.key(1), x, mask, train=False))
  for name in REMAT_POLICIES:
    jaxpr = jax.make_jaxpr(lambda v: loss(v, name))(variables).jaxpr
    expected = [] if name == "none" else [REMAT_POLICIES[name]]
    assert checkpoint_policies(jaxpr) == expected, name
  results = run()
  ref_grads, ref_out = results["none"]
  scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(ref_grads))
  for name in POLICIES:
    grads, out = results[name]
    np.testing.assert_allclose(out, ref_out, rtol=1e-6, atol=1e-6,
                               err_msg=name)
    # Relative to the largest gradient: some are 0 up to rounding (the key
    # bias's, which softmax ignores).
    jax.tree.map(lambda g, r: np.testing.assert_allclose(
        g, r, rtol=1e-5, atol=1e-6 * scale, err_msg=name), grads, ref_grads)
