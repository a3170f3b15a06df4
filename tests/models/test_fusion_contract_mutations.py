"""The fusion contract catches the mistakes it exists for.

Each test breaks a block the way a block author might (a combination that
ignores `present`, a `__call__` without `token_times`, a block that does not
subclass `FusionBlock`) and asserts that a contract check fails on it.
"""

import flax.linen as nn
import jax.numpy as jnp
import pytest

from mmjax.models.fusion import late
from mmjax.models.fusion.base import FusionBlock, FusionOutput
from mmjax.models.layers.masking import masked_mean, valid_tokens
from mmjax.models.registries import FUSION
from tests.models import test_fusion_contract as contract

test_encoders = contract.test_encoders  # the contract's encoder fixture


@pytest.fixture
def fresh_models():
  """Models compiled after the mutation (and none of them kept after)."""
  contract.built.cache_clear()
  yield
  contract.built.cache_clear()


def late_case(combine):
  attributes = () if combine == "average" else (("combine", combine),)
  return contract.Case("late_fusion", attributes)


def everywhere(is_present):
  return jnp.ones_like(is_present)


@pytest.mark.parametrize("combine", ["average", "weighted", "vote"])
def test_unmutated_late_fusion_passes(combine, fresh_models):
  """The reference for the mutations below: each combine rule passes."""
  contract.check_middle_modality_is_left_out(late_case(combine))


def test_average_that_ignores_present_fails(monkeypatch, fresh_models):
  monkeypatch.setattr(late, "average_combine",
                      lambda logits, is_present: masked_mean(
                          logits, everywhere(is_present)))
  with pytest.raises(AssertionError):
    contract.check_middle_modality_is_left_out(late_case("average"))


def test_vote_that_ignores_present_fails(monkeypatch, fresh_models):
  vote = late.vote_combine
  monkeypatch.setattr(late, "vote_combine",
                      lambda logits, is_present: vote(logits,
                                                      everywhere(is_present)))
  with pytest.raises(AssertionError):
    contract.check_middle_modality_is_left_out(late_case("vote"))


def test_weighted_that_ignores_present_fails(monkeypatch, fresh_models):
  softmax = late.present_softmax
  monkeypatch.setattr(late, "present_softmax",
                      lambda logits, is_present: softmax(
                          logits, everywhere(is_present)))
  with pytest.raises(AssertionError):
    contract.check_middle_modality_is_left_out(late_case("weighted"))


class _MeanTokens(nn.Module):
  """A block written the old way: a plain module with `__call__`."""
  num_classes: int
  dim: int = 8

  @nn.compact
  def __call__(self, tokens, token_masks, present, *, train):
    pooled = [masked_mean(*valid_tokens(tokens[m], token_masks[m], present[m]))
              for m in sorted(tokens)]
    return FusionOutput(embedding=nn.Dense(self.dim)(
        jnp.concatenate(pooled, axis=-1)))


class _OverridesCall(FusionBlock):
  """A `FusionBlock` that overrides `__call__` (without `token_times`)."""
  dim: int = 8

  @nn.compact
  def __call__(self, tokens, token_masks, present, *, train):
    pooled = [masked_mean(*valid_tokens(tokens[m], token_masks[m], present[m]))
              for m in sorted(tokens)]
    return FusionOutput(embedding=nn.Dense(self.dim)(sum(pooled[:1])))


@pytest.fixture(params=[_MeanTokens, _OverridesCall], ids=lambda c: c.__name__)
def call_without_token_times(request, fresh_models):
  FUSION.register("mutant_block")(request.param)
  yield contract.Case("mutant_block")
  FUSION.unregister("mutant_block")


def test_call_without_token_times_fails(call_without_token_times):
  with pytest.raises(AssertionError, match="FusionBlock|fuse"):
    contract.check_block_class(call_without_token_times)
  # And through the model, which passes token_times=.
  with pytest.raises(TypeError, match="token_times"):
    contract.check_outputs(call_without_token_times)


def test_fuse_that_leaves_missing_modality_in_fails(fresh_models):
  """A mean over all modalities, present or not (missing ones are zeros)."""

  class MeanOverAll(FusionBlock):
    dim: int = 8

    def fuse(self, tokens, token_masks, present, *, token_times, train):
      pooled = [nn.Dense(self.dim, name=f"{m}_projection")(
          masked_mean(*valid_tokens(tokens[m], token_masks[m], present[m])))
                for m in sorted(tokens)]
      return FusionOutput(embedding=jnp.mean(jnp.stack(pooled), axis=0))

  FUSION.register("mutant_mean")(MeanOverAll)
  try:
    case = contract.Case("mutant_mean")
    contract.check_masked_content_cannot_leak(case)  # leaks nothing ...
    with pytest.raises(AssertionError):              # ... but is not left out
      contract.check_missing_modality_is_left_out(case, "image")
  finally:
    FUSION.unregister("mutant_mean")
