"""The contract every registered fusion block and encoder must keep.

Parametrized over the registries themselves: a newly registered block or
encoder is tested here with no new test code. Blocks are built from their
own defaults (`registries.module_defaults`), as a config would build them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import av_digits
from mmjax.models.fusion.base import FusionOutput
from mmjax.models.layers import attention
from mmjax.models.registries import ENCODERS, FUSION, split_options
from mmjax.train import losses

NUM_CLASSES = 3
BATCH = 4
# Different widths and token counts per modality; example 1 has padding.
TOKENS = {"audio": jax.random.normal(jax.random.key(0), (BATCH, 3, 8)),
          "image": jax.random.normal(jax.random.key(1), (BATCH, 5, 6))}
MASKS = {"audio": jnp.array([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]], bool),
         "image": jnp.array([[1] * 5, [1, 1, 1, 0, 0], [1] * 5, [1] * 5], bool)}
ALL_PRESENT = {m: jnp.ones(BATCH) for m in TOKENS}
# Audio missing in examples 2 and 3.
AUDIO_MISSING = {"audio": jnp.array([1.0, 1.0, 0.0, 0.0]), "image": jnp.ones(BATCH)}

FUSION_NAMES = list(FUSION.names())
ENCODER_NAMES = list(ENCODERS.names())


def make_block(name):
  return FUSION.get(name)(num_classes=NUM_CLASSES)


def init_block(block, tokens=TOKENS, masks=MASKS, present=ALL_PRESENT):
  return jax.jit(lambda t, m, p: block.init(jax.random.key(2), t, m, p,
                                            train=False))(tokens, masks, present)


@functools.lru_cache(maxsize=None)
def default_variables(name):
  """The block's variables for TOKENS, MASKS, ALL_PRESENT, initialized once
  per block for all the tests below (the init compiles once)."""
  return init_block(make_block(name))


@functools.lru_cache(maxsize=None)
def jit_apply(name):
  """The block's apply (train=False), jitted once per block: eager Flax
  dispatches op by op and is far slower on CPU for these tests."""
  block = make_block(name)
  return jax.jit(lambda v, t, m, p: block.apply(v, t, m, p, train=False))


def outputs(out: FusionOutput):
  """The arrays a block's user sees: embedding and, if set, logits."""
  return [out.embedding] + ([] if out.logits is None else [out.logits])


def assert_outputs_close(a: FusionOutput, b: FusionOutput, rows=slice(None),
                         atol=1e-5):
  for x, y in zip(outputs(a), outputs(b)):
    np.testing.assert_allclose(x[rows], y[rows], atol=atol, rtol=1e-5)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_fusion_output_shapes_and_sown_embedding(name):
  block = make_block(name)
  variables = default_variables(name)
  out, state = jax.jit(lambda v: block.apply(
      v, TOKENS, MASKS, ALL_PRESENT, train=False, mutable=["intermediates"]))(
          variables)
  assert isinstance(out, FusionOutput)
  assert out.embedding.ndim == 2 and out.embedding.shape[0] == BATCH
  assert np.isfinite(out.embedding).all()
  if out.logits is not None:
    assert out.logits.shape == (BATCH, NUM_CLASSES)
  if out.modality_logits is not None:
    assert sorted(out.modality_logits) == sorted(TOKENS)
    for logits in out.modality_logits.values():
      assert logits.shape == (BATCH, NUM_CLASSES)
  sown = state["intermediates"]["fused_embedding"]
  np.testing.assert_array_equal(sown[0], out.embedding)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_fusion_under_jit_matches_eager(name):
  block = make_block(name)
  variables = default_variables(name)
  eager = block.apply(variables, TOKENS, MASKS, AUDIO_MISSING, train=False)
  jitted = jit_apply(name)(variables, TOKENS, MASKS, AUDIO_MISSING)
  assert_outputs_close(eager, jitted)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_fusion_masked_content_cannot_leak(name):
  """Missing modalities and padded tokens: any content, even NaN, is ignored,
  in the output and in the gradients; real content is not."""
  block, apply = make_block(name), jit_apply(name)
  variables = default_variables(name)
  reference = apply(variables, TOKENS, MASKS, AUDIO_MISSING)
  invalid = {m: ~(MASKS[m] & (AUDIO_MISSING[m][:, None] > 0))[..., None]
             for m in TOKENS}
  poisoned = {m: jnp.where(invalid[m], jnp.nan, TOKENS[m]) for m in TOKENS}
  out = apply(variables, poisoned, MASKS, AUDIO_MISSING)
  for x in outputs(out):
    assert np.isfinite(x).all()
  assert_outputs_close(out, reference)

  def loss(v):
    o = block.apply(v, poisoned, MASKS, AUDIO_MISSING, train=False)
    return sum(jnp.sum(x) for x in outputs(o))
  grads = jax.jit(jax.grad(loss))(variables)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))

  # A change to valid content does change the output (the test can fail).
  # Not an affine map of the tokens, which an input LayerNorm would undo.
  changed = {m: jnp.where(invalid[m], TOKENS[m], TOKENS[m] ** 2 + 1.0)
             for m in TOKENS}
  out = apply(variables, changed, MASKS, AUDIO_MISSING)
  assert not np.allclose(outputs(out)[0], outputs(reference)[0], atol=1e-4)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_fusion_missing_modality_is_ignored_per_example(name):
  """Changing audio changes the examples that have it, and only those."""
  block, apply = make_block(name), jit_apply(name)
  variables = default_variables(name)
  reference = apply(variables, TOKENS, MASKS, AUDIO_MISSING)
  other_audio = dict(TOKENS, audio=TOKENS["audio"] * -2.0 + 0.5)
  out = apply(variables, other_audio, MASKS, AUDIO_MISSING)
  assert_outputs_close(out, reference, rows=slice(2, 4))
  assert not np.allclose(out.embedding[:2], reference.embedding[:2], atol=1e-4)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_fusion_with_one_modality_and_with_none_present(name):
  block = make_block(name)
  only = {k: {"image": v["image"]} for k, v in
          (("t", TOKENS), ("m", MASKS), ("p", ALL_PRESENT))}
  variables = init_block(block, only["t"], only["m"], only["p"])
  out = jit_apply(name)(variables, only["t"], only["m"], only["p"])
  assert out.embedding.shape[0] == BATCH
  assert np.isfinite(out.embedding).all()

  variables = default_variables(name)
  none = {m: jnp.zeros(BATCH) for m in TOKENS}
  out = jit_apply(name)(variables, TOKENS, MASKS, none)
  for x in outputs(out):
    assert np.isfinite(x).all()


def reference_attend(query, key, value, key_mask, causal=False):
  """Straightforward softmax attention with einsum (the reference)."""
  logits = jnp.einsum("btnh,bsnh->bnts", query, key) / np.sqrt(query.shape[-1])
  mask = key_mask[:, None, None, :]
  if causal:
    mask = mask & jnp.tril(jnp.ones((query.shape[1], key.shape[1]), bool))
  logits = jnp.where(mask, logits, -1e30)
  weights = jax.nn.softmax(logits, axis=-1)
  value = jnp.where(key_mask[:, :, None, None], value, 0.0)
  out = jnp.einsum("bnts,bsnh->btnh", weights, value)
  return jnp.where(key_mask.any(axis=1)[:, None, None, None], out, 0.0)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_fusion_attention_agrees_with_einsum_reference(name, monkeypatch):
  """Attention blocks give the same output with `jax.nn.dot_product_attention`
  replaced by the einsum reference (blocks without attention trivially so)."""
  block = make_block(name)
  variables = default_variables(name)
  fused = jit_apply(name)(variables, TOKENS, MASKS, AUDIO_MISSING)
  monkeypatch.setattr(attention, "attend", reference_attend)
  # A fresh trace, so that the patched function is the one compiled.
  reference = jax.jit(lambda v, t, m, p: block.apply(v, t, m, p, train=False))(
      variables, TOKENS, MASKS, AUDIO_MISSING)
  assert_outputs_close(fused, reference)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_fusion_gradient_reaches_every_modality(name):
  """The training loss has a gradient with respect to every modality's tokens,
  so it reaches the parameters of every modality's encoder."""
  block = make_block(name)
  variables = default_variables(name)
  labels = jnp.arange(BATCH) % NUM_CLASSES
  head = jax.random.normal(jax.random.key(5), (512, NUM_CLASSES))

  def loss(tokens):
    out = block.apply(variables, tokens, MASKS, ALL_PRESENT, train=True,
                      rngs={"dropout": jax.random.key(6)})
    logits = out.logits
    if logits is None:  # the model's head, outside the block
      logits = out.embedding @ head[:out.embedding.shape[-1]]
    return losses.cross_entropy(logits, labels).mean()
  grads = jax.jit(jax.grad(loss))(TOKENS)
  for m in TOKENS:
    valid = np.asarray(MASKS[m])
    norm = float(jnp.sqrt(jnp.sum(grads[m] ** 2)))
    assert norm > 0.0 and np.isfinite(norm), (m, norm)
    assert not np.any(np.asarray(grads[m])[~valid]), f"{m}: padding got gradient"


def encoder_input(cls):
  if cls.modality == "image":
    return jax.random.uniform(jax.random.key(7), (2, 28, 28, 1))
  if cls.modality == "audio":
    return jax.random.normal(jax.random.key(8), (2, 1600)) * 0.1
  if cls.modality == "text":  # ids below 100; example 1 is padded
    return {"token_ids": jax.random.randint(jax.random.key(9), (2, 12), 0, 100),
            "token_mask": jnp.arange(12)[None] < jnp.array([[12], [8]])}
  if cls.modality == "video":  # example 1's last 3 frames are padding
    return {"frames": jax.random.uniform(jax.random.key(10), (2, 8, 32, 32, 1)),
            "frame_mask": jnp.arange(8)[None] < jnp.array([[8], [5]])}
  raise AssertionError(f"no test input for modality {cls.modality!r}")


def make_encoder(name):
  config, _ = split_options(av_digits.encoder_config(name).to_dict())
  config.pop("name")
  return ENCODERS.get(name)(**config)


@functools.lru_cache(maxsize=None)
def encoder_setup(name):
  """(encoder, input, variables, jitted apply with train=False), built once
  per encoder and shared by the tests below, so that each encoder's init and
  apply compile once (compilation is most of these tests' time on CPU; an
  eager apply of the larger encoders took 7-10 s on the 2-core CI machine)."""
  encoder = make_encoder(name)
  x = encoder_input(type(encoder))
  variables = jax.jit(lambda x: encoder.init(jax.random.key(0), x, train=False))(x)
  apply = jax.jit(lambda v, x: encoder.apply(v, x, train=False))
  return encoder, x, variables, apply


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_encoder_tokens_mask_and_gradients(name):
  encoder, x, variables, apply = encoder_setup(name)
  tokens, mask = apply(variables, x)
  assert tokens.ndim == 3 and tokens.shape[0] == 2 and tokens.dtype == jnp.float32
  assert mask.shape == tokens.shape[:2] and mask.dtype == jnp.bool_
  assert np.isfinite(tokens).all()

  def loss(params):
    out, _ = encoder.apply({**variables, "params": params}, x, train=True,
                           rngs={"dropout": jax.random.key(1),
                                 "augment": jax.random.key(2)},
                           mutable=["batch_stats"])
    return jnp.sum(out[0] * jnp.arange(out[0].shape[-1]))
  grads = jax.jit(jax.grad(loss))(variables["params"])
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  dead = [jax.tree_util.keystr(path) for path, g in flat
          if not np.any(np.asarray(g))]
  assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_encoder_examples_are_independent_at_evaluation(name):
  """An example's tokens do not depend on the rest of the batch (train=False)."""
  _, x, variables, apply = encoder_setup(name)
  tokens, _ = apply(variables, x)
  if isinstance(x, dict) and "frames" in x:  # video: other frames
    other = dict(x, frames=x["frames"].at[1].set(x["frames"][1] * 5.0 + 0.3))
  elif isinstance(x, dict):  # text: other ids for example 1
    other = dict(x, token_ids=x["token_ids"].at[1].add(100))
  else:
    other = x.at[1].set(x[1] * 5.0 + 0.3)
  changed, _ = apply(variables, other)
  np.testing.assert_allclose(changed[0], tokens[0], atol=1e-5, rtol=1e-5)
  assert not np.allclose(changed[1], tokens[1], atol=1e-4)


@pytest.mark.parametrize(
    "name", [n for n in ENCODER_NAMES if ENCODERS.get(n).modality == "text"])
def test_text_encoder_ignores_ids_at_padded_positions(name):
  """Other ids where `token_mask` is False change neither the tokens at real
  positions nor a pooled token; per-position encoders return `token_mask`."""
  _, x, variables, apply = encoder_setup(name)
  tokens, mask = apply(variables, x)
  if tokens.shape[1] == x["token_ids"].shape[1]:
    np.testing.assert_array_equal(mask, x["token_mask"])
  assert np.asarray(mask).any()
  ids = x["token_ids"]
  other_padding = jnp.where(x["token_mask"], ids, (ids + 37) % 100)
  changed, changed_mask = apply(variables, dict(x, token_ids=other_padding))
  np.testing.assert_array_equal(changed_mask, mask)
  np.testing.assert_allclose(np.asarray(changed)[np.asarray(mask)],
                             np.asarray(tokens)[np.asarray(mask)],
                             atol=1e-5, rtol=1e-5)
  # A real token changed does change the output (the test can fail).
  other_real = ids.at[1, 0].set((ids[1, 0] + 37) % 100)
  changed, _ = apply(variables, dict(x, token_ids=other_real))
  assert not np.allclose(changed[1], tokens[1], atol=1e-4)


@pytest.mark.parametrize(
    "name", [n for n in ENCODER_NAMES if ENCODERS.get(n).modality == "video"])
def test_video_encoder_ignores_padded_frames(name):
  """Any content where `frame_mask` is False, even NaN, changes neither the
  mask nor the tokens at valid positions, nor makes gradients non-finite."""
  encoder, x, variables, apply = encoder_setup(name)
  tokens, mask = apply(variables, x)
  assert np.asarray(mask).any()
  padded = ~x["frame_mask"][:, :, None, None, None]
  poisoned = dict(x, frames=jnp.where(padded, jnp.nan, x["frames"]))
  changed, changed_mask = apply(variables, poisoned)
  np.testing.assert_array_equal(changed_mask, mask)
  valid = np.asarray(mask)
  assert np.isfinite(np.asarray(changed)).all()
  np.testing.assert_allclose(np.asarray(changed)[valid],
                             np.asarray(tokens)[valid], atol=1e-5, rtol=1e-5)

  def loss(params):
    out, _ = encoder.apply({**variables, "params": params}, poisoned,
                           train=False)
    return jnp.sum(out)
  grads = jax.jit(jax.grad(loss))(variables["params"])
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  # A real frame changed does change the output (the test can fail).
  other_real = x["frames"].at[1, 0].set(1.0 - x["frames"][1, 0])
  changed, _ = apply(variables, dict(x, frames=other_real))
  assert not np.allclose(changed[1], tokens[1], atol=1e-4)


@pytest.mark.parametrize(
    "name",
    [n for n in ENCODER_NAMES if hasattr(ENCODERS.get(n), "token_times")])
def test_encoder_token_times(name):
  """Encoders with a time axis give each token a time in seconds: float32
  `[tokens]`, non-negative, non-decreasing."""
  encoder, x, variables, apply = encoder_setup(name)
  tokens, _ = apply(variables, x)
  times = encoder.token_times(tokens.shape[1])
  assert isinstance(times, np.ndarray) and times.dtype == np.float32
  assert times.shape == (tokens.shape[1],)
  assert (times >= 0).all() and (np.diff(times) >= 0).all()
