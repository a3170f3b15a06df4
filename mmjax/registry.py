"""Name -> object registries, one per kind of thing (fusion blocks, encoders, preprocessing ops).

Configs select components by name; a new component is one decorated definition:

    FUSION = Registry("fusion block")

    @FUSION.register("early_fusion")
    class EarlyFusion(nn.Module): ...

    FUSION.get("early_fusion")
"""

from typing import Any, Callable, Dict, Iterable


class Registry:
  """A named mapping from config strings to objects.

  Raises:
    ValueError: when a name is registered twice.
    KeyError: from `get`, naming the unknown name and the known ones.
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: Dict[str, Any] = {}

  def register(self, name: str) -> Callable[[Any], Any]:
    def decorator(obj):
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is already registered")
      self._entries[name] = obj
      return obj
    return decorator

  def get(self, name: str) -> Any:
    if name not in self._entries:
      raise KeyError(
          f"Unknown {self.kind} {name!r}; known: {sorted(self._entries)}")
    return self._entries[name]

  def names(self) -> Iterable[str]:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries
