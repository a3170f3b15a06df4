"""The contract every registered fusion block keeps, checked the way training
calls it.

Each block is built by `build_classifier` from a config (its registered name
and attributes, as a config file names them) and run inside
`MultimodalModel`, which passes `token_times=` and applies the head: the same
code path as `launch.py`. The encoders are `given_tokens` (and
`given_timed_tokens`, which also has `token_times`), registered here for
the tests only: they return the test's tokens and masks unchanged, so the
checks below see the block through the model without an encoder in between.

Cases: every registered block at its defaults without token times (the
primary case: every check, each modality left out in turn), and as
variants, at its defaults with token times and with every other value of
each enumerated attribute (`Literal` and `bool` attributes, e.g.
`late_fusion`'s `combine`, the attention blocks' `positional_embedding`),
with token times (the checks whose result depends on the configuration:
outputs, leaks, the middle modality left out). Three modalities of
different widths and token counts; examples 1 and 3 have padding. A newly
registered block is tested here with no new test code. Compilation is most
of the time, so each model is compiled once per case and modality set.
"""

import dataclasses
import functools
import typing
from typing import ClassVar, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmjax.models.fusion.base import FusionBlock
from mmjax.models.layers import attention
from mmjax.models.multimodal import build_classifier
from mmjax.models.registries import ENCODERS, FUSION, module_config
from mmjax.train import losses

NUM_CLASSES = 3
BATCH = 4
# name: (tokens, width, seconds per token or None for no time axis).
SHAPES = {"audio": (3, 8, 0.25), "image": (5, 6, None), "text": (4, 10, 0.5)}
MODALITIES = tuple(sorted(SHAPES))
TOKENS = {m: jax.random.normal(jax.random.key(i), (BATCH, n, d))
          for i, (m, (n, d, _)) in enumerate(SHAPES.items())}
MASKS = {m: jnp.arange(n)[None] < jnp.array([[n], [max(n - 2, 1)], [n], [1]])
         for m, (n, _, _) in SHAPES.items()}
ALL_PRESENT = {m: jnp.ones(BATCH) for m in SHAPES}
# Examples 2 and 3 lack the modality; 0 and 1 have it.
PARTLY = jnp.array([1.0, 1.0, 0.0, 0.0])
MISSING_ROWS, PRESENT_ROWS = slice(2, 4), slice(0, 2)


def missing(modality):
  """`present` with `modality` absent in examples 2 and 3."""
  return dict(ALL_PRESENT, **{modality: PARTLY})


class GivenTokens(nn.Module):
  """Test encoder: returns the batch's `tokens` and `mask` unchanged."""
  modality: ClassVar[str] = "tokens"

  def __call__(self, inputs, *, train):
    return inputs["tokens"], inputs["mask"]


class GivenTimedTokens(GivenTokens):
  """`GivenTokens` with a time axis: token i is at i * seconds_per_token."""
  seconds_per_token: float = 0.25

  def token_times(self, num_tokens: int) -> np.ndarray:
    return (np.arange(num_tokens) * self.seconds_per_token).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def test_encoders():
  ENCODERS.register("given_tokens")(GivenTokens)
  ENCODERS.register("given_timed_tokens")(GivenTimedTokens)
  yield
  ENCODERS.unregister("given_tokens")
  ENCODERS.unregister("given_timed_tokens")


def enumerated_attributes(cls) -> Dict[str, Tuple]:
  """`{attribute: allowed values}` of a block's `Literal` and bool fields."""
  hints = typing.get_type_hints(cls)
  out = {}
  for field in dataclasses.fields(cls):
    hint = hints.get(field.name)
    if typing.get_origin(hint) is typing.Literal:
      out[field.name] = typing.get_args(hint)
    elif hint is bool:
      out[field.name] = (False, True)
  return out


@dataclasses.dataclass(frozen=True)
class Case:
  """One block configuration: registered name, attribute overrides, and
  whether the encoders give token times."""
  name: str
  attributes: Tuple[Tuple[str, object], ...] = ()
  timed: bool = False

  @property
  def is_default(self):
    return not self.attributes

  def __str__(self):
    attrs = ",".join(f"{k}={v}" for k, v in self.attributes)
    return f"{self.name}[{attrs or 'defaults'}{',timed' if self.timed else ''}]"


def cases_of(name):
  cls = FUSION.get(name)
  out = [Case(name), Case(name, timed=True)]
  defaults = {f.name: f.default for f in dataclasses.fields(cls)}
  for attribute, values in enumerated_attributes(cls).items():
    out += [Case(name, ((attribute, v),), True) for v in values
            if v != defaults[attribute]]
  return out


CASES = [case for name in FUSION.names() for case in cases_of(name)]
PRIMARY_CASES = [case for case in CASES if case.is_default and not case.timed]
VARIANT_CASES = [case for case in CASES if case not in PRIMARY_CASES]


def small_settings(name) -> Dict[str, object]:
  """The block's `tiny()` (none for a class without it, which
  `check_block_class` refuses)."""
  return getattr(FUSION.get(name), "tiny", dict)()


def model_config(case: Case, modalities=MODALITIES) -> ml_collections.ConfigDict:
  """The experiment config a user would write for this block."""
  encoders = {}
  for m in modalities:
    seconds = SHAPES[m][2]
    encoders[m] = ({"name": "given_timed_tokens", "seconds_per_token": seconds}
                   if case.timed and seconds else {"name": "given_tokens"})
  return ml_collections.ConfigDict({
      "modalities": tuple(modalities),
      "model": {"encoders": encoders,
                "fusion": module_config(FUSION, case.name, **{
                    **small_settings(case.name), **dict(case.attributes)}),
                "num_classes": NUM_CLASSES}})


def batch(tokens=TOKENS, masks=MASKS, modalities=MODALITIES):
  return {m: {"tokens": tokens[m], "mask": masks[m]} for m in modalities}


class Built:
  """A case's model, built through `build_classifier`, its variables and a
  jitted apply `(variables, tokens, masks, present) -> (logits, fused
  embedding)`, made once per case and modality set. `initialize=False`
  leaves the variables to the caller."""

  def __init__(self, case: Case, modalities=MODALITIES, initialize=True):
    self.case, self.modalities = case, tuple(modalities)
    self.model = build_classifier(model_config(case, modalities))
    self.variables = None
    if initialize:
      self.variables = jax.jit(lambda b, p: self.model.init(
          jax.random.key(2), b, p, train=False))(
              batch(modalities=modalities), self.present(ALL_PRESENT))
    self.apply = jax.jit(self._apply)

  def present(self, present):
    return {m: present[m] for m in self.modalities}

  def _apply(self, variables, tokens, masks, present, train=False):
    logits, state = self.model.apply(
        variables, batch(tokens, masks, self.modalities), self.present(present),
        train=train, mutable=["intermediates"],
        rngs={"dropout": jax.random.key(6)} if train else None)
    return logits, state["intermediates"]["fusion"]["fused_embedding"][0]

  def __call__(self, tokens=TOKENS, masks=MASKS, present=ALL_PRESENT,
               variables=None):
    return self.apply(variables or self.variables, tokens, masks, present)

  def block(self) -> FusionBlock:
    config = model_config(self.case).model.fusion.to_dict()
    return FUSION.get(config.pop("name"))(num_classes=NUM_CLASSES, **config)


@functools.lru_cache(maxsize=None)
def built(case: Case, modalities=MODALITIES, initialize=True) -> Built:
  return Built(case, modalities, initialize)


def assert_close(a, b, rows=slice(None), atol=1e-5):
  np.testing.assert_allclose(np.asarray(a)[rows], np.asarray(b)[rows],
                             atol=atol, rtol=1e-5)


# The checks, as functions of a case, so that the README example's test and
# the mutation tests run exactly these.


def check_block_class(case: Case):
  cls = FUSION.get(case.name)
  assert issubclass(cls, FusionBlock), (
      f"{case.name}: {cls.__name__} must subclass "
      "mmjax.models.fusion.base.FusionBlock and implement fuse()")
  assert "__call__" not in vars(cls), (
      f"{case.name}: implement fuse(), not __call__ (the base's __call__ is "
      "what the model calls)")


def check_outputs(case: Case):
  """Logits and the sown embedding have the documented shapes and are
  finite."""
  b = built(case)
  logits, embedding = b()
  assert logits.shape == (BATCH, NUM_CLASSES) and logits.dtype == jnp.float32
  assert embedding.ndim == 2 and embedding.shape[0] == BATCH
  assert np.isfinite(logits).all() and np.isfinite(embedding).all()


def check_masked_content_cannot_leak(case: Case, gradients=True):
  """Padding and a missing modality: any content, even NaN, changes neither
  the logits nor (`gradients`) the gradients; real content does change the
  logits."""
  b = built(case)
  present = missing(MODALITIES[0])
  reference, _ = b(present=present)
  invalid = {m: ~(MASKS[m] & (present[m][:, None] > 0))[..., None]
             for m in MODALITIES}
  poisoned = {m: jnp.where(invalid[m], jnp.nan, TOKENS[m]) for m in MODALITIES}
  logits, _ = b(poisoned, present=present)
  assert np.isfinite(logits).all()
  assert_close(logits, reference)

  def loss(params):
    out, _ = b.apply({**b.variables, "params": params}, poisoned, MASKS,
                     present)
    return jnp.sum(out)
  if gradients:
    grads = jax.jit(jax.grad(loss))(b.variables["params"])
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  # Not an affine map of the tokens, which an input LayerNorm would undo.
  changed = {m: jnp.where(invalid[m], TOKENS[m], TOKENS[m] ** 2 + 1.0)
             for m in MODALITIES}
  assert not np.allclose(b(changed, present=present)[0], reference, atol=1e-4)


def check_missing_modality_is_ignored_per_example(case: Case):
  """Changing a modality changes the examples that have it, and only those."""
  b = built(case)
  m = MODALITIES[-1]
  reference, _ = b(present=missing(m))
  other = dict(TOKENS, **{m: TOKENS[m] * -2.0 + 0.5})
  logits, _ = b(other, present=missing(m))
  assert_close(logits, reference, MISSING_ROWS)
  assert not np.allclose(logits[PRESENT_ROWS], reference[PRESENT_ROWS],
                         atol=1e-4)


def check_missing_modality_is_left_out(case: Case, modality: str):
  """Where `modality` is missing, the logits are those of the same block
  applied without it: the model built without `modality`, with the block's
  `params_without_modality` and every other parameter unchanged.

  A block that has no such parameters (`params_without_modality` is None)
  must at least not let anything of the modality reach those examples:
  neither its tokens (the checks above) nor its own parameters."""
  b = built(case)
  logits, _ = b(present=missing(modality))
  dims = {m: SHAPES[m][1] for m in MODALITIES}
  params = b.variables["params"]
  fusion = b.block().params_without_modality(params["fusion"], dims, modality)
  if fusion is None:
    perturbed = perturb_modality_params(params, modality)
    other, _ = b(present=missing(modality),
                 variables={**b.variables, "params": perturbed})
    assert_close(other, logits, MISSING_ROWS)
    return
  rest = tuple(m for m in MODALITIES if m != modality)
  without = built(case, rest, initialize=False)
  variables = {**b.variables, "params": {**params, "fusion": fusion}}
  reference, _ = without(variables=variables)
  assert_close(logits, reference, MISSING_ROWS, atol=1e-4)
  # The comparison can fail: the examples that have the modality differ.
  assert not np.allclose(logits[PRESENT_ROWS], reference[PRESENT_ROWS],
                         atol=1e-4)


def perturb_modality_params(params, modality):
  """Every parameter under a name that starts with `<modality>_` (or ends
  with `_<modality>`), plus 1."""
  def visit(tree, hit):
    if isinstance(tree, dict):
      return {k: visit(v, hit or k.startswith(f"{modality}_")
                       or k.endswith(f"_{modality}")) for k, v in tree.items()}
    return tree + 1.0 if hit else tree
  return visit(jax.tree.map(lambda x: x, dict(params)), False)


def check_one_modality_and_none_present(case: Case):
  """A model of one modality works, and so does an example with none."""
  one = built(case, ("image",))
  logits, embedding = one()
  assert logits.shape == (BATCH, NUM_CLASSES)
  assert np.isfinite(logits).all() and np.isfinite(embedding).all()
  logits, embedding = built(case)(present={m: jnp.zeros(BATCH)
                                           for m in MODALITIES})
  assert np.isfinite(logits).all() and np.isfinite(embedding).all()


def check_gradient_reaches_every_modality(case: Case):
  """The training loss (train=True, dropout on) has a gradient with respect
  to every modality's valid tokens, so it reaches every encoder, and none
  with respect to padding."""
  b = built(case)
  labels = jnp.arange(BATCH) % NUM_CLASSES

  def loss(tokens):
    logits, _ = b._apply(b.variables, tokens, MASKS, ALL_PRESENT, train=True)
    return losses.cross_entropy(logits, labels).mean()
  grads = jax.jit(jax.grad(loss))(TOKENS)
  for m in MODALITIES:
    norm = float(jnp.sqrt(jnp.sum(grads[m] ** 2)))
    assert norm > 0.0 and np.isfinite(norm), (m, norm)
    assert not np.any(np.asarray(grads[m])[~np.asarray(MASKS[m])]), (
        f"{m}: padding got gradient")


def reference_attend(query, key, value, key_mask, causal=False,
                     implementation=None):
  """Straightforward softmax attention with einsum (the reference; the
  kernel choice `implementation` does not apply)."""
  del implementation
  logits = jnp.einsum("btnh,bsnh->bnts", query, key) / np.sqrt(query.shape[-1])
  mask = key_mask[:, None, None, :]
  if causal:
    mask = mask & jnp.tril(jnp.ones((query.shape[1], key.shape[1]), bool))
  logits = jnp.where(mask, logits, -1e30)
  weights = jax.nn.softmax(logits, axis=-1)
  value = jnp.where(key_mask[:, :, None, None], value, 0.0)
  out = jnp.einsum("bnts,bsnh->btnh", weights, value)
  return jnp.where(key_mask.any(axis=1)[:, None, None, None], out, 0.0)


def check_attention_agrees_with_einsum_reference(case: Case, monkeypatch):
  """The logits are the same with `jax.nn.dot_product_attention` replaced by
  the einsum reference (trivially so for blocks without attention)."""
  b = built(case)
  fused, _ = b(present=missing("audio"))
  monkeypatch.setattr(attention, "attend", reference_attend)
  # A fresh function, so that it is traced again with the patched attend
  # (jax.jit of the same bound method would reuse the first trace).
  reference, _ = jax.jit(lambda *args: b._apply(*args))(
      b.variables, TOKENS, MASKS, missing("audio"))
  assert_close(fused, reference)


def check_every_modality_is_left_out(case: Case):
  for m in MODALITIES:
    check_missing_modality_is_left_out(case, m)


def check_middle_modality_is_left_out(case: Case):
  check_missing_modality_is_left_out(case, MODALITIES[1])


PRIMARY_CHECKS = (check_block_class, check_outputs,
                  check_masked_content_cannot_leak,
                  check_missing_modality_is_ignored_per_example,
                  check_every_modality_is_left_out,
                  check_one_modality_and_none_present,
                  check_gradient_reaches_every_modality,
                  check_attention_agrees_with_einsum_reference)
def check_masked_content_cannot_leak_in_outputs(case: Case):
  check_masked_content_cannot_leak(case, gradients=False)


VARIANT_CHECKS = (check_outputs, check_masked_content_cannot_leak_in_outputs,
                  check_middle_modality_is_left_out)


def run_check(check, case, monkeypatch):
  if check is check_attention_agrees_with_einsum_reference:
    check(case, monkeypatch)
  else:
    check(case)


@pytest.mark.parametrize("case", PRIMARY_CASES, ids=str)
@pytest.mark.parametrize("check", PRIMARY_CHECKS, ids=lambda f: f.__name__[6:])
def test_fusion_contract(check, case, monkeypatch):
  run_check(check, case, monkeypatch)


@pytest.mark.parametrize("case", VARIANT_CASES, ids=str)
@pytest.mark.parametrize("check", VARIANT_CHECKS, ids=lambda f: f.__name__[6:])
def test_fusion_contract_variant(check, case, monkeypatch):
  run_check(check, case, monkeypatch)


def test_every_enumerated_attribute_value_is_a_case():
  """The cases cover `late_fusion`'s three combine rules and the attention
  blocks' three positional embeddings (the test can fail: a block whose
  attribute is a plain `str` has no enumerated values)."""
  covered = {(c.name, k, v) for c in CASES for k, v in c.attributes}
  defaults = {("late_fusion", "combine", "average")}
  for value in ("weighted", "vote"):
    assert ("late_fusion", "combine", value) in covered
  for name in ("self_attention", "cross_attention", "bottleneck",
               "time_aligned"):
    for value in ("sinusoidal", "time"):
      assert (name, "positional_embedding", value) in covered
  assert not defaults & covered
