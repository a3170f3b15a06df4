"""`mmjax.registry.Registry`: registration, lookup, messages, and the import
of its package on the first lookup."""

import importlib
import sys
import uuid

import pytest

from mmjax.registry import Registry, UnknownNameError


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


@pytest.fixture
def package(tmp_path, monkeypatch):
  """A temporary package `<pkg>` whose modules `a` and `sub.b` register
  "alpha" and "beta" in `<pkg>_defs.REG` (a Registry of "widget"s with
  package=`<pkg>`); `sub.b` raises on import while $<PKG>_FAIL is set; the
  test modules `test_c` and `c_test` raise whenever imported."""
  name = f"regpkg_{uuid.uuid4().hex}"
  files = {
      f"{name}_defs.py": ("from mmjax.registry import Registry\n"
                          f"REG = Registry('widget', package={name!r})\n"),
      f"{name}/__init__.py": "",
      f"{name}/a.py": (f"from {name}_defs import REG\n"
                       "@REG.register('alpha')\nclass Alpha:\n  pass\n"),
      f"{name}/sub/__init__.py": "",
      f"{name}/sub/b.py": (
          "import os\n"
          f"if os.environ.get({name.upper() + '_FAIL'!r}):\n"
          "  raise RuntimeError('b is broken')\n"
          f"from {name}_defs import REG\n"
          "@REG.register('beta')\nclass Beta:\n  pass\n"),
      f"{name}/test_c.py": "raise AssertionError('a test module was imported')\n",
      f"{name}/c_test.py": "raise AssertionError('a test module was imported')\n",
  }
  for path, text in files.items():
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(text)
  monkeypatch.syspath_prepend(str(tmp_path))
  yield name
  for module in [m for m in sys.modules if m.startswith(name)]:
    del sys.modules[module]


def _loaded(name):
  return sorted(m for m in sys.modules if m.startswith(f"{name}."))


def test_first_get_imports_the_package(package):
  reg = importlib.import_module(f"{package}_defs").REG
  assert _loaded(package) == []  # defining the registry imports nothing
  alpha = reg.get("alpha")
  assert alpha is sys.modules[f"{package}.a"].Alpha
  assert reg.get("beta") is sys.modules[f"{package}.sub.b"].Beta
  assert _loaded(package) == [f"{package}.a", f"{package}.sub",
                              f"{package}.sub.b"]


def test_names_imports_the_package(package):
  reg = importlib.import_module(f"{package}_defs").REG
  assert reg.names() == ["alpha", "beta"]
  assert f"{package}.test_c" not in sys.modules
  assert f"{package}.c_test" not in sys.modules


def test_contains_imports_the_package(package):
  reg = importlib.import_module(f"{package}_defs").REG
  assert "beta" in reg
  assert "gamma" not in reg
  assert f"{package}.sub.b" in sys.modules


def test_unknown_name_names_kind_known_names_and_closest(package):
  reg = importlib.import_module(f"{package}_defs").REG
  with pytest.raises(UnknownNameError) as info:
    reg.get("alpah")
  assert isinstance(info.value, KeyError)
  assert str(info.value) == ("Unknown widget 'alpah'; known widgets: alpha, "
                             "beta; did you mean 'alpha'?")
  assert (info.value.kind, info.value.name, info.value.known) == (
      "widget", "alpah", ["alpha", "beta"])
  with pytest.raises(UnknownNameError) as info:
    reg.get("zzz")
  assert str(info.value) == "Unknown widget 'zzz'; known widgets: alpha, beta"


def test_duplicate_registration_names_the_first(package):
  reg = importlib.import_module(f"{package}_defs").REG
  reg.names()
  with pytest.raises(ValueError,
                     match=rf"widget 'alpha' is already registered \(by "
                           rf"{package}\.a\.Alpha\)"):
    reg.register("alpha")(int)
  assert reg.get("alpha") is sys.modules[f"{package}.a"].Alpha


def test_failed_import_leaves_the_registry_retryable(package, monkeypatch):
  reg = importlib.import_module(f"{package}_defs").REG
  monkeypatch.setenv(f"{package.upper()}_FAIL", "1")
  with pytest.raises(RuntimeError, match="b is broken"):
    reg.get("alpha")
  with pytest.raises(RuntimeError, match="b is broken"):
    reg.names()  # still unpopulated: tries again, fails again
  monkeypatch.delenv(f"{package.upper()}_FAIL")
  assert reg.names() == ["alpha", "beta"]
  assert reg.get("beta") is sys.modules[f"{package}.sub.b"].Beta
