"""Builds a chain of preprocessing ops from a spec string.

In the spirit of big_vision's `pp.builder`. A spec such as
`"to_float|pad_or_crop(8000)"` is parsed into a chain of the ops registered
in `mmjax.data.pp.registry.OPS` (see there for the op contract `fn(x, seed)
-> x`); every op of the package is available after importing this module
alone, since the registry imports its modules on the first lookup.
"""

import ast
from typing import List, Tuple

import tensorflow as tf

from mmjax.data.pp.registry import Op
from mmjax.data.pp.registry import OPS


def _parse_call(text: str) -> Tuple[str, tuple, dict]:
  """Parses `name` or `name(literal args, key=literal)` into its parts."""
  try:
    node = ast.parse(text.strip(), mode="eval").body
  except SyntaxError as e:
    raise ValueError(f"cannot parse preprocessing op {text!r}: {e.msg}") from e
  if isinstance(node, ast.Name):
    return node.id, (), {}
  if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
    raise ValueError(
        f"preprocessing op {text!r} must look like `name` or `name(args)`")
  try:
    args = tuple(ast.literal_eval(a) for a in node.args)
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
  except ValueError as e:
    raise ValueError(
        f"arguments of preprocessing op {text!r} must be Python literals") from e
  return node.func.id, args, kwargs


def parse(spec: str) -> Op:
  """Builds the op chain described by `spec` (ops separated by `|`).

  Args:
    spec: e.g. `"value_range(0, 1)"` or `"to_float|pad_or_crop(8000)"`; an
      empty string is the identity.

  Returns:
    `fn(x, seed) -> x` applying the ops left to right.

  Raises:
    ValueError: for an unparsable op or wrong arguments, naming the op and
      listing the known ops for an unknown name.
  """
  ops: List[Op] = []
  for part in filter(None, (p.strip() for p in spec.split("|"))):
    name, args, kwargs = _parse_call(part)
    if name not in OPS:
      raise ValueError(
          f"unknown preprocessing op {name!r} in {spec!r}; known: {OPS.names()}")
    try:
      ops.append(OPS.get(name)(*args, **kwargs))
    except TypeError as e:
      raise ValueError(f"bad arguments for preprocessing op {part!r}: {e}") from e

  def apply(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    for i, op in enumerate(ops):
      x = op(x, tf.random.experimental.stateless_fold_in(seed, i))
    return x
  return apply
