import pytest

from mmjax.registry import Registry


def test_register_and_get():
  reg = Registry("thing")

  @reg.register("a")
  def a():
    return 1

  assert reg.get("a") is a
  assert "a" in reg and "b" not in reg
  assert list(reg.names()) == ["a"]


def test_unknown_name_lists_known():
  reg = Registry("fusion block")
  reg.register("early_fusion")(object)
  with pytest.raises(KeyError, match="Unknown fusion block 'nope'.*early_fusion"):
    reg.get("nope")


def test_duplicate_registration_fails():
  reg = Registry("thing")
  reg.register("a")(object)
  with pytest.raises(ValueError, match="already registered"):
    reg.register("a")(int)
