"""The contract every registered encoder must keep.

Parametrized over `ENCODERS` itself: a newly registered encoder is tested
here with no new test code. Each encoder is built as a config builds it
(`module_config` -> `check_module_config` -> `build_encoder`), with the small
settings it declares in `tiny()`.

Cases: every encoder at `tiny()` (the primary case), and as variants, with
every other value of each attribute annotated `typing.Literal` (pools,
poolers, positional embeddings, norms, activations, ...), run through every
check whose result depends on the configuration (all below but the
registration ones). Bools are not enumerated: for encoders they change the
input format (`input_features`) or select a published layout. A value that
acts only with another attribute's value gets it from `COMPANIONS`; values
run on another encoder instead are listed in `COVERED_BY`. Every value works
with the inputs below: none is excluded. Not enumerated: keys inside mapping
attributes (`frontend["features"]`, frame_encoder's `image_encoder`).
"""

import dataclasses
import functools
import typing
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.encoders import audio
from mmjax.models.layers import attention
from mmjax.models.registries import (ENCODERS, build_encoder,
                                     check_module_config, literal_attributes,
                                     module_config)

ENCODER_NAMES = list(ENCODERS.names())
# The modalities `encoder_input` has a test batch for.
MODALITIES = ("image", "audio", "text", "video")
# Text ids below 100, and up to 199 in the independence test, so every
# text encoder's tiny() vocabulary must hold at least this many ids.
TEXT_IDS = 200


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


# (encoder, attribute) -> the overrides every non-default value of the
# attribute is tested with, because it acts only together with them.
COMPANIONS = {
    # The pooler acts on the pooled CLS token: with the default pool "none"
    # ViT ignores it (the case would be the primary one).
    ("vit", "pooler"): {"pool": "cls"},
    # TextTransformer refuses a pooler with the default pool "none".
    ("text_transformer", "pooler"): {"pool": "cls"},
}
# (encoder, attribute) -> the encoder whose variants run the attribute's
# values instead. Dropped for time (compilation is most of this file's
# time; each variant costs ~3 s of CPU), only where the value reaches the
# same layer unchanged: every activation is `TransformerEncoder`'s (through
# `PatchTransformer` in vit and spectrogram_transformer).
COVERED_BY = {
    ("spectrogram_transformer", "activation"): "vit",
    ("text_transformer", "activation"): "vit",
}


@dataclasses.dataclass(frozen=True)
class Case:
  """One encoder configuration: registered name and attribute overrides on
  top of its `tiny()`."""
  name: str
  attributes: Tuple[Tuple[str, object], ...] = ()

  @property
  def modality(self):
    return ENCODERS.get(self.name).modality

  def __str__(self):
    if not self.attributes:
      return self.name
    return f"{self.name}[{','.join(f'{k}={v}' for k, v in self.attributes)}]"


def cases_of(name):
  """The primary case of encoder `name`, then one variant per other value
  (than its `tiny()` one, else its default) of each `Literal` attribute."""
  cls = ENCODERS.get(name)
  base = {**{f.name: f.default for f in dataclasses.fields(cls)}, **cls.tiny()}
  out = [Case(name)]
  for attribute, values in literal_attributes(cls).items():
    if (name, attribute) in COVERED_BY:
      continue
    companions = COMPANIONS.get((name, attribute), {})
    out += [Case(name, (*companions.items(), (attribute, value)))
            for value in values if value != base[attribute]]
  return out


CASES = [case for name in ENCODER_NAMES for case in cases_of(name)]


def cases(modality=None, has=None):
  """`CASES` of encoders of `modality` (None: all) that have attribute `has`."""
  return [c for c in CASES
          if (modality is None or c.modality == modality) and
          (has is None or hasattr(ENCODERS.get(c.name), has))]


def make_encoder(case):
  cls = ENCODERS.get(case.name)
  config = module_config(ENCODERS, case.name,
                         **{**cls.tiny(), **dict(case.attributes)})
  check_module_config(ENCODERS, config.to_dict(),
                      f"config.model.encoders.{cls.modality}")
  return build_encoder(config)


@functools.lru_cache(maxsize=None)
def encoder_setup(case):
  """(encoder, input, variables, jitted apply with train=False), built once
  per case and shared by the tests below, so that each encoder's init and
  apply compile once (compilation is most of these tests' time on CPU, and
  eager Flax dispatches op by op)."""
  encoder = make_encoder(case)
  x = encoder_input(type(encoder))
  variables = jax.jit(lambda x: encoder.init(jax.random.key(0), x, train=False))(x)
  apply = jax.jit(lambda v, x: encoder.apply(v, x, train=False))
  return encoder, x, variables, apply


def test_encoders_are_registered():
  assert ENCODER_NAMES, "ENCODERS lists no encoder"


def test_build_encoder_drops_options_and_names_the_module():
  config = module_config(ENCODERS, "cnn", features=(8,), embed_dim=4)
  config.freeze = True
  config.learning_rate_scale = 0.5
  encoder = build_encoder(config, name="image_encoder")
  assert type(encoder) is ENCODERS.get("cnn")
  assert encoder.name == "image_encoder"
  assert tuple(encoder.features) == (8,) and encoder.embed_dim == 4
  assert build_encoder(dict(config.to_dict(), embed_dim=6)).embed_dim == 6
  with pytest.raises(KeyError, match="no 'name'"):
    build_encoder({"features": (8,)})
  with pytest.raises(KeyError, match="Unknown encoder 'nope'"):
    build_encoder({"name": "nope"})
  with pytest.raises(TypeError):
    build_encoder({"name": "cnn", "not_an_attribute": 1})


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_encoder_declares_modality_and_tiny_settings(name):
  """`modality` is one the tests have a batch for; `tiny()` is a classmethod
  returning overrides of real attributes (module_config raises for others)."""
  cls = ENCODERS.get(name)
  assert isinstance(getattr(cls, "modality", None), str), name
  assert cls.modality in MODALITIES, (name, cls.modality)
  assert callable(getattr(cls, "tiny", None)), f"{name} declares no tiny()"
  tiny = cls.tiny()
  assert isinstance(tiny, dict) and tiny, (name, tiny)
  config = module_config(ENCODERS, name, **tiny)
  for key, value in tiny.items():
    got = config[key]
    got = got.to_dict() if hasattr(got, "to_dict") else got
    assert got == value, (name, key)
  if cls.modality == "text":
    assert config["vocab_size"] >= TEXT_IDS, (name, config["vocab_size"])
  with pytest.raises(ValueError, match="no attribute"):
    module_config(ENCODERS, name, **tiny, not_an_attribute=1)


def test_every_enumerated_attribute_value_is_a_case():
  """Each non-default value of every `Literal` attribute is a case (or, per
  `COVERED_BY`, one of the encoder named there), the default never a
  variant (the test can fail: an attribute annotated `str` has no
  enumerated values)."""
  covered = {(c.name, k, v) for c in CASES for k, v in c.attributes}
  for (name, attribute), other in COVERED_BY.items():
    values = literal_attributes(ENCODERS.get(name))[attribute]
    assert literal_attributes(ENCODERS.get(other))[attribute] == values
    default = getattr(ENCODERS.get(other), attribute)
    assert getattr(ENCODERS.get(name), attribute) == default
    for value in values:
      assert (value == default) != ((other, attribute, value) in covered)
  for name, attribute, value in [
      ("vit", "pool", "cls"), ("vit", "pool", "all"),
      ("vit", "pooler", "layer_norm"), ("vit", "positional_embedding", "time"),
      ("vit", "activation", "relu"), ("spectrogram_transformer", "pool", "mean"),
      ("spectrogram_transformer", "patch_order", "frequency_major"),
      ("spectrogram_transformer", "positional_embedding", "sinusoidal"),
      ("spectrogram_cnn", "normalization", "band"), ("resnet", "norm", "batch"),
      ("text_transformer", "pool", "eos"),
      ("text_transformer", "pooler", "dense_tanh"), ("lstm", "pool", "last"),
      ("gru", "pool", "mean"), ("whisper_encoder", "pool", "mean"),
      ("frame_encoder", "temporal", "lstm"),
      ("frame_encoder", "temporal", "mean"), ("vivit", "spatial_pool", "mean"),
      ("vivit", "positional_embedding", "time")]:
    assert (name, attribute, value) in covered, (name, attribute, value)
  for name, attribute, default in [
      ("vit", "pool", "none"), ("resnet", "norm", "group"),
      ("frame_encoder", "temporal", "transformer"), ("vivit", "spatial_pool", "cls"),
      ("text_transformer", "activation", "gelu_tanh")]:
    assert getattr(ENCODERS.get(name), attribute) == default
    assert all((n, a) != (name, attribute) or v != default
               for n, a, v in covered), (name, attribute)
  assert len({str(c) for c in CASES}) == len(CASES)


def test_literal_aliases_name_the_values_the_code_takes():
  """The aliases of name -> function tables list exactly their keys."""
  assert set(typing.get_args(attention.Activation)) == set(attention.ACTIVATIONS)
  assert (set(typing.get_args(audio.Normalization)) ==
          set(audio.NORMALIZATIONS))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_encoder_tokens_mask_and_gradients(case):
  encoder, x, variables, apply = encoder_setup(case)
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


@pytest.mark.parametrize("case", CASES, ids=str)
def test_encoder_examples_are_independent_at_evaluation(case):
  """An example's tokens do not depend on the rest of the batch (train=False)."""
  _, x, variables, apply = encoder_setup(case)
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


@pytest.mark.parametrize("case", cases("text"), ids=str)
def test_text_encoder_ignores_ids_at_padded_positions(case):
  """Other ids where `token_mask` is False change neither the tokens at real
  positions nor a pooled token; per-position encoders return `token_mask`."""
  _, x, variables, apply = encoder_setup(case)
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


@pytest.mark.parametrize("case", cases("video"), ids=str)
def test_video_encoder_ignores_padded_frames(case):
  """Any content where `frame_mask` is False, even NaN, changes neither the
  mask nor the tokens at valid positions, nor makes gradients non-finite."""
  encoder, x, variables, apply = encoder_setup(case)
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


@pytest.mark.parametrize("case", cases(has="token_times"), ids=str)
def test_encoder_token_times(case):
  """Encoders with a time axis give each token a time in seconds: float32
  `[tokens]`, non-negative, non-decreasing."""
  encoder, x, variables, apply = encoder_setup(case)
  tokens, _ = apply(variables, x)
  times = encoder.token_times(tokens.shape[1])
  assert isinstance(times, np.ndarray) and times.dtype == np.float32
  assert times.shape == (tokens.shape[1],)
  assert (times >= 0).all() and (np.diff(times) >= 0).all()
