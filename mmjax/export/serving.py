"""The inference function of a trained classifier, as a serving caller
calls it: flat named inputs (the eval pipeline's output after tf.data
preprocessing) with a free batch dimension, named outputs.

Everything that runs in JAX is inside: the encoders' own front ends (e.g.
the log-mel spectrogram of `spectrogram_cnn`), BatchNorm running
statistics, eval mode (no dropout or augmentation), the mixed-precision
casts of `mmjax.train.steps.make_eval_step` (`config.dtype`).
"""

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.train import steps

PRESENT_PREFIX = "present_"
AUX_PREFIX = "aux_logits_"


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """One named input or output.

  Attributes:
    name: its name in the flat `{name: array}` of the artifacts (a Python
      identifier): `<modality>` for a modality given as one array,
      `<modality>_<key>` for each array of a modality given as a dict (e.g.
      `text_token_ids`), `present_<modality>`, `logits`,
      `aux_logits_<modality>`.
    shape: the shape after the batch dimension.
    dtype: numpy dtype name, e.g. "float32".
    modality: the modality it belongs to (None for `logits`).
    key: the key within the modality's dict (None for a single array).
  """
  name: str
  shape: Tuple[int, ...]
  dtype: str
  modality: Optional[str] = None
  key: Optional[str] = None

  def as_json(self, batch: str) -> Dict[str, Any]:
    """`{"name", "shape" (with `batch` first), "dtype", "modality", "key"}`."""
    return {"name": self.name, "shape": [batch, *self.shape],
            "dtype": self.dtype, "modality": self.modality, "key": self.key}


def model_inputs(element_spec: Mapping[str, Any],
                 modalities: Tuple[str, ...]) -> List[TensorInfo]:
  """The model's inputs, from the `element_spec` of the eval pipeline
  (`mmjax.data.pipeline.eval_batches`: `{modality: tf.TensorSpec [batch,
  ...] or {key: tf.TensorSpec}, "label", "mask"}`), in `modalities` order.

  Raises:
    KeyError: naming a modality the pipeline does not produce.
  """
  found = []
  for m in modalities:
    if m not in element_spec:
      raise KeyError(f"the eval pipeline (config.pp_eval) produces no {m!r} "
                     f"input; it produces {sorted(element_spec)}")
    spec = element_spec[m]
    items = sorted(spec.items()) if isinstance(spec, Mapping) else [(None, spec)]
    for key, s in items:
      found.append(TensorInfo(
          name=m if key is None else f"{m}_{key}",
          shape=tuple(int(d) for d in s.shape[1:]),
          dtype=np.dtype(s.dtype.as_numpy_dtype).name, modality=m, key=key))
  return found


def presence_inputs(modalities: Tuple[str, ...]) -> List[TensorInfo]:
  """`present_<modality>`: float32 per example, 1.0 present, 0.0 missing."""
  return [TensorInfo(PRESENT_PREFIX + m, (), "float32", m) for m in modalities]


def make_inference_fn(apply_fn: Callable, inputs: List[TensorInfo],
                      modalities: Tuple[str, ...], *, dtype: str = "float32",
                      aux_heads: bool = False, with_presence: bool = False
                      ) -> Callable[[Mapping[str, Any], Dict[str, jax.Array]],
                                    Dict[str, jax.Array]]:
  """`infer(variables, {name: array}) -> {name: array}` of a
  `MultimodalModel` in eval mode.

  Args:
    apply_fn: the model's `apply` (`train_state.apply_fn`).
    inputs: `model_inputs(...)`: the named arrays the function takes, each
      `[batch, *shape]` of its dtype.
    modalities: the model's modalities.
    dtype: `config.dtype`: parameters and floating inputs are cast to it
      for the forward pass, BatchNorm statistics stay float32, outputs are
      float32 (as `mmjax.train.steps.make_eval_step`).
    aux_heads: the model has unimodal auxiliary heads (`aux_loss_weight` >
      0): also return `aux_logits_<modality>`, each modality's own head on
      its encoder output (computed whether or not it is marked missing).
    with_presence: also take `present_<modality>` (float32 `[batch]`, 0.0
      for a missing modality, whose input array is then ignored by the
      fusion block but must still be given, e.g. zeros); without, every
      modality is present (the same as ones).

  Returns:
    The function; `variables` is `{"params": float32 tree[, "batch_stats":
    tree]}` (`train_state.variables()`); the outputs are `logits` float32
    `[batch, num_classes]` and, with `aux_heads`, `aux_logits_<modality>`
    of the same shape.

  Raises:
    ValueError: for a `dtype` outside `mmjax.train.steps.DTYPES`.
  """
  if dtype not in steps.DTYPES:
    raise ValueError(f"config.dtype must be one of {steps.DTYPES}, got {dtype!r}")
  compute_dtype = jnp.dtype(dtype)

  def infer(variables: Mapping[str, Any],
            named: Dict[str, jax.Array]) -> Dict[str, jax.Array]:
    variables = {**variables, "params": steps.cast_floating(
        variables["params"], compute_dtype)}
    batch = {}
    for info in inputs:
      x = named[info.name]
      if info.key is None:
        batch[info.modality] = x
      else:
        batch.setdefault(info.modality, {})[info.key] = x
    present = None
    if with_presence:
      present = {m: named[PRESENT_PREFIX + m].astype(jnp.float32)
                 for m in modalities}
    batch = steps.cast_floating(batch, compute_dtype)
    if not aux_heads:
      logits = apply_fn(variables, batch, present, train=False)
      return {"logits": logits.astype(jnp.float32)}
    logits, updates = apply_fn(variables, batch, present, train=False,
                               mutable=["modality_logits"])
    outputs = {"logits": logits.astype(jnp.float32)}
    for m, sown in updates["modality_logits"].items():
      outputs[AUX_PREFIX + m] = sown[0].astype(jnp.float32)
    return outputs

  return infer


def output_infos(num_classes: int, modalities: Tuple[str, ...],
                 aux_heads: bool) -> List[TensorInfo]:
  """The outputs of `make_inference_fn`: float32 `[batch, num_classes]`."""
  found = [TensorInfo("logits", (num_classes,), "float32")]
  if aux_heads:
    found += [TensorInfo(AUX_PREFIX + m, (num_classes,), "float32", m)
              for m in modalities]
  return found
