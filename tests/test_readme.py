"""The README's "Write your own fusion layer" example passes the contract."""

import pathlib
import re

import pytest

from mmjax.models.registries import FUSION
from tests.models import test_contract as contract

README = (pathlib.Path(__file__).resolve().parents[1] / "docs"
          / "write_your_own_fusion_layer.md")
NAME = "summary_cross_attention"


@pytest.fixture(scope="module")
def example_block():
  text = README.read_text()
  section = text.split("## Write your own fusion layer", 1)[1]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})  # pylint: disable=exec-used
  yield NAME
  FUSION._entries.pop(NAME)  # pylint: disable=protected-access


@pytest.mark.parametrize("check", [
    contract.test_fusion_output_shapes_and_sown_embedding,
    contract.test_fusion_under_jit_matches_eager,
    contract.test_fusion_masked_content_cannot_leak,
    contract.test_fusion_missing_modality_is_ignored_per_example,
    contract.test_fusion_with_one_modality_and_with_none_present,
    contract.test_fusion_gradient_reaches_every_modality,
], ids=lambda f: f.__name__)
def test_readme_block_passes_the_contract(example_block, check):
  check(example_block)


def test_readme_block_attention_matches_reference(example_block, monkeypatch):
  contract.test_fusion_attention_agrees_with_einsum_reference(
      example_block, monkeypatch)
