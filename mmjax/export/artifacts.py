"""Serializing an inference function: `jax.export` (StableHLO, for plain
JAX) and a TensorFlow SavedModel through `jax2tf` (for TF Serving), both
with a symbolic batch dimension.

Sources: https://docs.jax.dev/en/latest/export/export.html (jax.export,
shape polymorphism) and jax/experimental/jax2tf/README.md (native
serialization, saving with the parameters as `tf.Variable`s).
"""

import functools
import os
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

from etils import epath
import jax
from jax.experimental import jax2tf
import tensorflow as tf

from mmjax import paths
from mmjax.export.serving import TensorInfo

BATCH = "batch"  # the symbolic batch dimension's name
# The exported code runs on either (the caller's platform is picked when it
# is called); lowering for CUDA needs no GPU.
PLATFORMS = ("cpu", "cuda")

# fn(variables, {name: array}) -> {name: array}
InferenceFn = Callable[[Mapping[str, Any], Dict[str, jax.Array]],
                       Dict[str, jax.Array]]


def abstract_inputs(inputs: List[TensorInfo]) -> Dict[str, jax.ShapeDtypeStruct]:
  """`{name: ShapeDtypeStruct [batch, *shape]}` with one symbolic `batch`
  (>= 1) shared by every input."""
  batch, = jax.export.symbolic_shape(BATCH)
  return {i.name: jax.ShapeDtypeStruct((batch, *i.shape), i.dtype)
          for i in inputs}


def export_stablehlo(infer: InferenceFn, variables: Mapping[str, Any],
                     inputs: List[TensorInfo], path: epath.PathLike,
                     platforms: Sequence[str] = PLATFORMS) -> jax.export.Exported:
  """Writes `infer` with `variables` baked in as constants, serialized by
  `jax.export` (a flatbuffer holding the StableHLO module), to `path`.

  Load it with JAX alone: `jax.export.deserialize(bytearray(data)).call({name:
  array})`, any batch size >= 1.

  Returns:
    The `jax.export.Exported`.
  """
  exported = jax.export.export(
      jax.jit(functools.partial(infer, variables)), platforms=tuple(platforms))(
          abstract_inputs(inputs))
  paths.write_atomic(path, bytes(exported.serialize()))
  return exported


def export_saved_model(entries: Mapping[str, Tuple[InferenceFn, List[TensorInfo]]],
                       variables: Mapping[str, Any], path: epath.PathLike,
                       platforms: Sequence[str] = PLATFORMS) -> None:
  """Writes a TensorFlow SavedModel with one serving signature per entry.

  Each `{signature name: (infer, inputs)}` is converted with `jax2tf`
  (native serialization: the StableHLO module inside an `XlaCallModule`
  op; batch polymorphic). The variables are saved once as `tf.Variable`s,
  shared by the signatures (a GraphDef holds no large constant).

  Args:
    entries: the signatures; e.g. "serving_default".
    variables: `{"params": ..., ["batch_stats": ...]}` host arrays.
    path: the SavedModel folder to create.
    platforms: lowering platforms.
  """
  module = tf.Module()
  module.model_variables = tf.nest.map_structure(tf.Variable, dict(variables))
  signatures = {}
  for name, (infer, inputs) in entries.items():
    converted = jax2tf.convert(
        infer, polymorphic_shapes=[None, f"({BATCH}, ...)"],
        with_gradient=False, native_serialization_platforms=tuple(platforms))
    spec = {i.name: tf.TensorSpec([None, *i.shape], i.dtype, name=i.name)
            for i in inputs}
    fn = tf.function(functools.partial(_call_with, converted, module),
                     autograph=False, input_signature=[spec])
    setattr(module, name, fn)
    signatures[name] = fn.get_concrete_function()
  tf.saved_model.save(module, os.fspath(path), signatures=signatures)


def _call_with(converted, module, named):
  return converted(module.model_variables, named)
