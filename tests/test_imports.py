"""Import structure: no cycles between mmjax modules at module level, no
`noqa: F401` side-effect imports, and registries that fill themselves.

Registration has one mechanism (`mmjax.registry.Registry(kind, package=...)`
imports its package on the first lookup), so no module is imported only for
what importing it registers, and a registry looked up in a fresh interpreter
already knows every name its package defines.
"""

import ast
import io
import json
import pathlib
import re
import subprocess
import sys
import tokenize
from typing import Dict, Iterator, List, Optional, Set

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "mmjax"
# Where code lives that might import mmjax for its side effects.
CODE_PATHS = ("mmjax", "configs", "launch.py", "experiments", "benchmarks",
              "scripts")
# registry variable -> (module defining it, package its entries live in).
REGISTRIES = {
    "FUSION": ("mmjax.models.registries", "mmjax.models.fusion"),
    "ENCODERS": ("mmjax.models.registries", "mmjax.models.encoders"),
    "FAMILIES": ("mmjax.pretrained.families", "mmjax.pretrained"),
}


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _modules() -> Dict[str, pathlib.Path]:
  """`{dotted name: file}` of every module and package under mmjax/."""
  return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
  return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
      isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(body: List[ast.stmt]) -> Iterator[ast.stmt]:
  """The import statements run when the module is imported: top level and
  inside top-level if/try/with blocks (not in functions, classes, or
  `if TYPE_CHECKING:`)."""
  for node in body:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      yield node
    elif isinstance(node, ast.If):
      if not _is_type_checking(node.test):
        yield from _module_level_imports(node.body)
      yield from _module_level_imports(node.orelse)
    elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
      for block in (node.body, node.orelse, node.finalbody):
        yield from _module_level_imports(block)
      for handler in node.handlers:
        yield from _module_level_imports(handler.body)
    elif isinstance(node, (ast.With, ast.AsyncWith)):
      yield from _module_level_imports(node.body)


def _with_parents(name: str) -> List[str]:
  """`a.b.c` -> [a, a.b, a.b.c]: importing a module imports its packages."""
  parts = name.split(".")
  return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _imported(module: str, is_package: bool, node: ast.stmt,
              known: Set[str]) -> Set[str]:
  """The mmjax modules (of `known`) that import statement `node` of
  `module` imports; `from pkg import name` gives `pkg.name` when that is a
  module."""
  targets = []
  if isinstance(node, ast.Import):
    targets = [alias.name for alias in node.names]
  else:
    base = node.module or ""
    if node.level:
      anchor = module.split(".")
      anchor = anchor if is_package else anchor[:-1]
      anchor = anchor[:len(anchor) - (node.level - 1)]
      base = ".".join(anchor + ([base] if base else []))
    targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
  out = set()
  for target in targets:
    out.update(t for t in _with_parents(target) if t in known)
  out.discard(module)
  return out


def import_graph() -> Dict[str, Set[str]]:
  """`{module: modules it imports at module level}` over mmjax/."""
  modules = _modules()
  graph = {}
  for name, path in modules.items():
    tree = ast.parse(path.read_text(), str(path))
    edges = set()
    for node in _module_level_imports(tree.body):
      edges |= _imported(name, path.name == "__init__.py", node, set(modules))
    graph[name] = edges
  return graph


def _strongly_connected(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """Tarjan's strongly connected components with more than one module."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  limit = sys.getrecursionlimit()
  sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
  try:
    for v in sorted(graph):
      if v not in index:
        visit(v)
  finally:
    sys.setrecursionlimit(limit)
  return out


def _shortest_cycle(graph: Dict[str, Set[str]], component: List[str]) -> List[str]:
  """A shortest cycle through the first module of `component`, as a path
  that starts and ends with it."""
  start, members = component[0], set(component)
  parents: Dict[str, Optional[str]] = {start: None}
  frontier = [start]
  while frontier:
    nxt = []
    for v in frontier:
      for w in sorted(graph[v] & members):
        if w == start:
          path = [v]
          while parents[path[-1]] is not None:
            path.append(parents[path[-1]])
          return list(reversed(path)) + [start]
        if w not in parents:
          parents[w] = v
          nxt.append(w)
    frontier = nxt
  raise AssertionError(f"no cycle through {start}")  # unreachable for an SCC


def import_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """One shortest cycle per group of modules that import each other."""
  return [_shortest_cycle(graph, c) for c in _strongly_connected(graph)]


def test_no_module_level_import_cycles():
  graph = import_graph()
  lines = [f"  {' -> '.join(_shortest_cycle(graph, c))}  (modules in cycles "
           f"with it: {', '.join(c)})" for c in _strongly_connected(graph)]
  assert not lines, "module-level import cycles in mmjax:\n" + "\n".join(lines)


def test_cycle_finder_finds_a_cycle():
  """The checker itself: a cycle through an `if`/`try` import, a
  `from pkg import module` edge and a relative import are all found; an
  import inside a function is not an edge."""
  sources = {
      "a": "import b\ndef f():\n  import d\n",
      "b": "try:\n  from pkg import c\nexcept ImportError:\n  pass\n",
      "pkg.c": "if True:\n  from . import e\n",
      "pkg.e": "from a import x\n",
      "d": "import a\n",
  }
  known = set(sources) | {"pkg"}
  graph = {m: set() for m in known}
  for module, source in sources.items():
    for node in _module_level_imports(ast.parse(source).body):
      graph[module] |= _imported(module, False, node, known)
  assert graph["b"] == {"pkg", "pkg.c"}
  assert graph["pkg.c"] == {"pkg", "pkg.e"}
  assert import_cycles(graph) == [["a", "b", "pkg.c", "pkg.e", "a"]]


def _code_files() -> Iterator[pathlib.Path]:
  for entry in CODE_PATHS:
    path = REPO_ROOT / entry
    yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def test_no_noqa_f401_side_effect_imports():
  found = []
  for path in _code_files():
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    for token in tokens:
      if (token.type == tokenize.COMMENT and
          re.search(r"noqa\b.*\bF401\b", token.string, re.I)):
        found.append(f"{path.relative_to(REPO_ROOT)}:{token.start[0]}: "
                     f"{token.line.strip()}")
  assert not found, ("`noqa: F401` imports (register through a Registry's "
                     "package, import what is used):\n  " + "\n  ".join(found))


def registered_in_source() -> Dict[str, Set[str]]:
  """`{registry: names}` of every `<REGISTRY>.register("name")` call in
  mmjax/, decorator or not, found with `ast`."""
  out = {registry: set() for registry in REGISTRIES}
  for path in sorted(PACKAGE.rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
          and node.func.attr == "register"
          and isinstance(node.func.value, ast.Name)
          and node.func.value.id in REGISTRIES):
        assert node.args and isinstance(node.args[0], ast.Constant), (
            f"{path}:{node.lineno}: register with a non-literal name")
        out[node.func.value.id].add(node.args[0].value)
  return out


_FRESH_LOOKUP = """
import json, sys
from mmjax.models.registries import FUSION, ENCODERS
from mmjax.pretrained.families import FAMILIES
packages = {packages!r}
early = sorted(m for m in sys.modules
               if any(m.startswith(p + ".") for p in packages.values()))
names = {{"FUSION": FUSION.names(), "ENCODERS": ENCODERS.names(),
          "FAMILIES": FAMILIES.names()}}
print(json.dumps({{"imported_before_lookup": early, "names": names}}))
"""


def test_registries_fill_themselves_in_a_fresh_interpreter():
  """Importing only the registries, `.names()` lists every entry the
  package files register: no module needs importing for its side effect."""
  # Modules the registry modules themselves import are allowed to be there
  # before the lookup; entry modules are not.
  packages = {k: package for k, (_, package) in REGISTRIES.items()
              if k != "FAMILIES"}  # families.py lives in its own package
  proc = subprocess.run(
      [sys.executable, "-c", _FRESH_LOOKUP.format(packages=packages)],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["imported_before_lookup"] == [], (
      "entry modules imported before the first lookup: "
      f"{result['imported_before_lookup']}")
  expected = registered_in_source()
  for registry, names in result["names"].items():
    assert set(names) == expected[registry], registry
    assert expected[registry], f"no {registry}.register found in mmjax/"
