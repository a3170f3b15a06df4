"""Name -> object registries, one per kind of thing chosen from a config.

Every kind (fusion blocks, encoders, preprocessing ops, datasets, pretrained
families, objectives) is one `Registry`. A registry names the package its
entries live in and imports every module of that package on its first
lookup, so a new entry is one decorated definition in a new file of that
package, with no list to edit and no module imported for its side effects:

    FUSION = Registry("fusion block", package="mmjax.models.fusion")

    @FUSION.register("early_fusion")          # in mmjax/models/fusion/early.py
    class EarlyFusion(FusionBlock): ...

    FUSION.get("early_fusion")                # imports mmjax.models.fusion.*
"""

import difflib
import importlib
import pkgutil
from typing import Any, Callable, Dict, List, Optional


class UnknownNameError(KeyError):
  """A lookup of a name that is not registered.

  A `KeyError` (so `except KeyError` still catches it) whose `str` is the
  plain message, naming the kind, the name, the known names and the closest
  match, e.g. "Unknown fusion block 'nope'; known fusion blocks: ...".
  """

  def __init__(self, kind: str, name: str, known: List[str]):
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    self.kind, self.name, self.known = kind, name, known
    self.message = (f"Unknown {kind} {name!r}; known {kind}s: "
                    f"{', '.join(known)}{hint}")
    super().__init__(self.message)

  def __str__(self) -> str:
    return self.message


class Registry:
  """A named mapping from config strings to objects.

  Args:
    kind: what the entries are, in words ("fusion block"), for messages.
    package: the dotted name of the package whose modules register the
      entries (e.g. "mmjax.models.fusion"); all of its modules and
      subpackages are imported on the first `get`, `names` or `in`. None:
      entries are registered by whoever imports the registry.

  Raises:
    ValueError: from `register`, when a name is registered twice.
    UnknownNameError: from `get`, for a name that is not registered.
  """

  def __init__(self, kind: str, package: Optional[str] = None):
    self.kind = kind
    self.package = package
    self._entries: Dict[str, Any] = {}
    self._populated = package is None

  def register(self, name: str) -> Callable[[Any], Any]:
    """Decorator registering its argument under `name`; returns it unchanged."""
    def decorator(obj):
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is already registered (by "
                         f"{_where(self._entries[name])})")
      self._entries[name] = obj
      return obj
    return decorator

  def unregister(self, name: str) -> None:
    """Removes `name` (for tests that register a temporary entry)."""
    self._entries.pop(name, None)

  def get(self, name: str) -> Any:
    """The entry registered as `name`."""
    self._populate()
    if name not in self._entries:
      raise UnknownNameError(self.kind, name, sorted(self._entries))
    return self._entries[name]

  def names(self) -> List[str]:
    """Every registered name, sorted."""
    self._populate()
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    self._populate()
    return name in self._entries

  def _populate(self) -> None:
    if self._populated:
      return
    self._populated = True  # before importing: a module may look names up
    try:
      import_package(self.package)
    except BaseException:
      self._populated = False
      raise


def import_package(package: str) -> None:
  """Imports `package` and every module and subpackage under it, except
  test modules (`test_*`, `*_test`)."""
  root = importlib.import_module(package)
  for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
    leaf = info.name.rsplit(".", 1)[-1]
    if leaf.startswith("test_") or leaf.endswith("_test"):
      continue
    importlib.import_module(info.name)


def _where(obj: Any) -> str:
  return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"
