"""Mapping checkpoint weights onto Flax parameters, with errors that name them.

A family's mapping (`mmjax.pretrained.<family>`) is explicit code: for every
Flax parameter path it `take`s one named checkpoint weight from a
`WeightSource` and converts its layout with the functions below.
`assemble` then checks the result against the parameters the encoder
expects: a missing, unexpected or mis-shaped weight raises an error naming
the Flax path and the checkpoint name.

PyTorch -> Flax layouts: Linear `[out, in]` -> Dense kernel `[in, out]`;
attention projections -> DenseGeneral kernels `[D, heads, head_dim]`
(query/key/value) and `[heads, head_dim, D]` (out); Conv2d `[out, in, kh,
kw]` -> `[kh, kw, in, out]`; Conv1d `[out, in, k]` -> `[k, in, out]`.
"""

from typing import Any, Dict, Iterable, Mapping, NamedTuple, Optional, Tuple

import flax
import numpy as np


class WeightError(ValueError):
  """A checkpoint that does not fit the encoder (names the weights)."""


class NamedArray(np.ndarray):
  """A checkpoint weight that remembers its name through views (transposes,
  reshapes), so a shape error names the checkpoint weight."""

  def __array_finalize__(self, obj):
    self.source_name = getattr(obj, "source_name", None)


def source_name(array) -> str:
  """The checkpoint name of a weight taken from a `WeightSource`."""
  return getattr(array, "source_name", None) or "<computed>"


class WeightSource:
  """The checkpoint's weights, handed out by name; remembers what was taken.

  Args:
    weights: `{checkpoint name: array}`.
    where: the checkpoint (directory) for messages.
    prefix: prepended to every name asked for (e.g. "bert." for a
      `BertForSequenceClassification` checkpoint).
  """

  def __init__(self, weights: Mapping[str, np.ndarray], where: str,
               prefix: str = ""):
    self.weights = dict(weights)
    self.where = where
    self.prefix = prefix
    self.taken = set()
    self.last_taken = None

  def has(self, name: str) -> bool:
    return self.prefix + name in self.weights

  def take(self, name: str) -> np.ndarray:
    """The weight `prefix + name`.

    Raises:
      WeightError: naming the weight when the checkpoint lacks it.
    """
    full = self.prefix + name
    if full not in self.weights:
      raise WeightError(f"{self.where}: the checkpoint has no weight {full!r} "
                        f"(expected by this family's mapping)")
    self.taken.add(full)
    self.last_taken = full
    array = np.asarray(self.weights[full]).view(NamedArray)
    array.source_name = full
    return array

  def untaken(self, ignore_prefixes: Iterable[str] = ()) -> Tuple[str, ...]:
    """Names never taken, except those starting with an ignored prefix."""
    ignore = tuple(ignore_prefixes)
    return tuple(sorted(k for k in self.weights
                        if k not in self.taken and not k.startswith(ignore)))


def _check_ndim(w: np.ndarray, ndim: int, layout: str) -> None:
  if w.ndim != ndim:
    raise WeightError(f"checkpoint weight {source_name(w)!r} has shape "
                      f"{w.shape}; expected {layout}")


def _check_heads(w: np.ndarray, size: int, num_heads: int) -> None:
  if size % num_heads:
    raise WeightError(f"checkpoint weight {source_name(w)!r} has shape "
                      f"{w.shape}: {size} does not split into "
                      f"num_heads={num_heads} heads")


def dense(w: np.ndarray) -> np.ndarray:
  """Linear weight `[out, in]` -> Dense kernel `[in, out]`."""
  _check_ndim(w, 2, "a Linear [out, in]")
  return w.T


def heads_in(w: np.ndarray, num_heads: int) -> np.ndarray:
  """Q/K/V Linear `[N*H, D]` -> DenseGeneral kernel `[D, N, H]`."""
  _check_ndim(w, 2, "a Linear [heads * head_dim, in]")
  _check_heads(w, w.shape[0], num_heads)
  return w.T.reshape(w.shape[1], num_heads, -1)


def heads_bias(b: np.ndarray, num_heads: int) -> np.ndarray:
  """Q/K/V bias `[N*H]` -> `[N, H]`."""
  _check_ndim(b, 1, "a bias [heads * head_dim]")
  _check_heads(b, b.shape[0], num_heads)
  return b.reshape(num_heads, -1)


def heads_out(w: np.ndarray, num_heads: int) -> np.ndarray:
  """Output Linear `[D, N*H]` -> DenseGeneral kernel `[N, H, D]`."""
  _check_ndim(w, 2, "a Linear [out, heads * head_dim]")
  _check_heads(w, w.shape[1], num_heads)
  return w.T.reshape(num_heads, -1, w.shape[0])


def conv2d(w: np.ndarray) -> np.ndarray:
  """Conv2d `[out, in, kh, kw]` -> Flax `[kh, kw, in, out]`."""
  _check_ndim(w, 4, "a Conv2d [out, in, kh, kw]")
  return w.transpose(2, 3, 1, 0)


def conv1d(w: np.ndarray) -> np.ndarray:
  """Conv1d `[out, in, k]` -> Flax `[k, in, out]`."""
  _check_ndim(w, 3, "a Conv1d [out, in, k]")
  return w.transpose(2, 1, 0)


def layer_norm(source: WeightSource, name: str) -> Dict[str, np.ndarray]:
  """`{"scale", "bias"}` of a torch LayerNorm `name` (`.weight`, `.bias`)."""
  return {"scale": source.take(f"{name}.weight"),
          "bias": source.take(f"{name}.bias")}


def linear(source: WeightSource, name: str, bias: bool = True) -> Dict[str, np.ndarray]:
  """`{"kernel", "bias"}` of a torch Linear `name`."""
  out = {"kernel": dense(source.take(f"{name}.weight"))}
  if bias:
    out["bias"] = source.take(f"{name}.bias")
  return out


def attention(source: WeightSource, names: Mapping[str, str], num_heads: int,
              without_bias: Iterable[str] = ()) -> Dict[str, Any]:
  """`MultiHeadAttention` params from the torch Linears named by `names`
  (keys "query", "key", "value", "out").

  Projections listed in `without_bias` have none in the checkpoint and get
  a zero bias, which computes exactly the same: Whisper's key projection
  (a per-query constant that softmax ignores anyway), or every projection
  of a `qkv_bias=False` ViT/AST."""
  out = {}
  for part in ("query", "key", "value"):
    w = source.take(f"{names[part]}.weight")
    b = (np.zeros(w.shape[0], w.dtype) if part in without_bias
         else source.take(f"{names[part]}.bias"))
    out[part] = {"kernel": heads_in(w, num_heads),
                 "bias": heads_bias(b, num_heads)}
  out["out"] = {"kernel": heads_out(source.take(f"{names['out']}.weight"),
                                    num_heads),
                "bias": source.take(f"{names['out']}.bias")}
  return out


class LayerNames(NamedTuple):
  """Checkpoint names of one Transformer layer's modules, relative to the
  layer's prefix: the attention projections, the two LayerNorms (before or
  after their sub-layer, as the family's `norm_first`) and the MLP's two
  Linears."""
  query: str
  key: str
  value: str
  out: str
  attention_norm: str
  fc1: str
  fc2: str
  mlp_norm: str


def transformer_layer(source: WeightSource, prefix: str, names: LayerNames,
                      num_heads: int, without_bias: Iterable[str] = ()
                      ) -> Dict[str, Any]:
  """The params of one `TransformerBlock` from the layer at `prefix`."""
  full = {k: prefix + v for k, v in names._asdict().items()}
  return {"attention": attention(source, full, num_heads, without_bias),
          "attention_norm": layer_norm(source, full["attention_norm"]),
          "mlp": {"fc1": linear(source, full["fc1"]),
                  "fc2": linear(source, full["fc2"])},
          "mlp_norm": layer_norm(source, full["mlp_norm"])}


def assemble(mapped: Mapping[str, Any], expected: Mapping[str, Any],
             source: WeightSource,
             ignore_prefixes: Iterable[str] = ()) -> Dict[str, Any]:
  """Checks mapped params against the encoder's and returns them.

  Args:
    mapped: nested `{name: array}` built by a family's mapping.
    expected: the encoder's params (arrays or ShapeDtypeStructs).
    source: the WeightSource the mapping took from.
    ignore_prefixes: checkpoint names that may stay unused (heads of other
      tasks, a decoder, buffers such as `position_ids`).

  Returns:
    `mapped` as a nested dict of float32 numpy arrays, in `expected`'s
    structure.

  Raises:
    WeightError: naming every Flax path missing from or unexpected in the
      mapping, every shape that differs, and every checkpoint weight left
      unused.
  """
  got = flax.traverse_util.flatten_dict(dict(mapped), sep="/")
  want = flax.traverse_util.flatten_dict(flax.core.unfreeze(expected), sep="/")
  problems = []
  missing = sorted(set(want) - set(got))
  unexpected = sorted(set(got) - set(want))
  if missing:
    problems.append(f"encoder parameters with no checkpoint weight: {missing}")
  if unexpected:
    problems.append(f"mapped weights the encoder does not have: {unexpected}")
  for path in sorted(set(want) & set(got)):
    if tuple(np.shape(got[path])) != tuple(want[path].shape):
      problems.append(f"{path}: checkpoint weight {source_name(got[path])!r} "
                      f"gives shape {np.shape(got[path])}, the encoder expects "
                      f"{tuple(want[path].shape)}")
  unused = source.untaken(ignore_prefixes)
  if unused:
    problems.append(f"checkpoint weights not used by the mapping: {list(unused)}")
  if problems:
    raise WeightError(f"{source.where} does not fit the encoder:\n  - "
                      + "\n  - ".join(problems))
  return flax.traverse_util.unflatten_dict(
      {k: np.array(v, np.float32) for k, v in got.items()}, sep="/")


def detect_prefix(weights: Mapping[str, np.ndarray], marker: str,
                  candidates: Iterable[str]) -> Optional[str]:
  """The first of `candidates` (e.g. "", "bert.") such that `prefix + marker`
  is a weight name; None if none is."""
  for prefix in candidates:
    if prefix + marker in weights:
      return prefix
  return None
