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


def export_with_variables(infer: InferenceFn, variables: Mapping[str, Any],
                          inputs: List[TensorInfo],
                          platforms: Sequence[str] = PLATFORMS
                          ) -> jax.export.Exported:
  """`infer` lowered once by `jax.export`, the variables an argument:
  `exported.call(variables, {name: array})`; the model is traced here
  only, `export_stablehlo` and `export_saved_model` wrap the result."""
  abstract_variables = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), variables)
  return jax.export.export(jax.jit(infer), platforms=tuple(platforms))(
      abstract_variables, abstract_inputs(inputs))


def export_stablehlo(exported: jax.export.Exported,
                     variables: Mapping[str, Any], inputs: List[TensorInfo],
                     path: epath.PathLike) -> jax.export.Exported:
  """Writes `exported` (of `export_with_variables`) with `variables` baked
  in as constants, serialized by `jax.export` (a flatbuffer holding the
  StableHLO module), to `path`.

  Load it with JAX alone: `jax.export.deserialize(bytearray(data)).call({name:
  array})`, any batch size >= 1, on any of `exported.platforms`.

  Returns:
    The self-contained `jax.export.Exported` written.
  """
  closed = jax.export.export(
      jax.jit(functools.partial(exported.call, variables)),
      platforms=exported.platforms)(abstract_inputs(inputs))
  paths.write_atomic(path, bytes(closed.serialize()))
  return closed


def export_saved_model(entries: Mapping[str, Tuple[jax.export.Exported,
                                                   List[TensorInfo]]],
                       variables: Mapping[str, Any],
                       path: epath.PathLike) -> None:
  """Writes a TensorFlow SavedModel with one serving signature per entry.

  Each `{signature name: (exported, inputs)}` (`export_with_variables`) is
  converted with `jax2tf` (native serialization: the StableHLO module
  inside an `XlaCallModule` op; batch polymorphic). The variables are saved
  once as `tf.Variable`s, shared by the signatures (a GraphDef holds no
  large constant).

  Args:
    entries: the signatures; e.g. "serving_default".
    variables: `{"params": ..., ["batch_stats": ...]}` host arrays.
    path: the SavedModel folder to create.
  """
  module = tf.Module()
  module.model_variables = tf.nest.map_structure(tf.Variable, dict(variables))
  signatures = {}
  for name, (exported, inputs) in entries.items():
    converted = jax2tf.convert(
        exported.call, polymorphic_shapes=[None, f"({BATCH}, ...)"],
        with_gradient=False,
        native_serialization_platforms=exported.platforms)
    spec = {i.name: tf.TensorSpec([None, *i.shape], i.dtype, name=i.name)
            for i in inputs}
    signatures[name] = tf.function(
        functools.partial(_call_with, converted, module.model_variables),
        autograph=False, input_signature=[spec]).get_concrete_function()
  tf.saved_model.save(module, os.fspath(path), signatures=signatures)


def _call_with(converted, variables, named):
  return converted(_plain(variables), named)


def _plain(tree):
  """Nested dicts again: the module's attribute holds TF's tracked dict
  wrappers, a pytree of another type than the exported function's."""
  if hasattr(tree, "items"):
    return {k: _plain(v) for k, v in tree.items()}
  return tree
