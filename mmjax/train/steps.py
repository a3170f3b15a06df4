"""jit-compiled, data-parallel train and eval steps.

One train step serves every objective (`mmjax.objectives`): only its loss
function differs, the `Objective.loss` it is given.

Batches are global arrays sharded along the mesh's `data` axis and the
train_state is replicated, so XLA inserts the gradient all-reduce; the same
step runs on one device or many with identical results up to float32
reduction order. The train_state buffer is donated to save memory.
"""

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from mmjax import parallel
from mmjax.train import balancing, losses, metrics
from mmjax.train.state import TrainState

Batch = Mapping[str, jax.Array]

DTYPES = ("float32", "bfloat16", "float16")
# The batch key of the data's presence mask, `{modality: float32 [batch]}`
# (`mmjax.data.pipeline.PRESENT`): absent when every example has every
# modality.
PRESENT = "present"


def cast_floating(tree, dtype):
  """Casts every floating-point array of `tree` to `dtype` (others kept)."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
      else x, tree)


def _compute_dtype(dtype: str):
  if dtype not in DTYPES:
    raise ValueError(f"config.dtype must be one of {DTYPES}, got {dtype!r}")
  return jnp.dtype(dtype)


def make_train_step(mesh: Mesh, *, loss: Callable[[float, Sequence[str]],
                                                  Callable],
                    seed: int, label_smoothing: float,
                    schedule: optax.Schedule, dtype: str = "float32",
                    modalities: Sequence[str] = (),
                    modality_dropout: Optional[Mapping[str, float]] = None,
                    aux_loss_weight: float = 0.0,
                    gradient_modulation: Optional[Mapping] = None,
                    state_sharding: Any = None) -> Callable[
                        [TrainState, Batch], Tuple[TrainState, Dict]]:
  """Returns `train_step(state, batch) -> (state, metrics)`, jitted.

  The new train_state keeps `state_sharding` (a NamedSharding or a tree of
  them, e.g. `mmjax.sharding.state_shardings`; default replicated), the
  input state must have it too; the batch is split over the mesh.

  Randomness (rng streams "dropout" and "augment", the latter for on-device
  augmentation such as SpecAugment) is `fold_in(key(seed), step)`: a
  function of the step alone, so a resumed run repeats exactly the
  uninterrupted one. The minimised loss is `loss(label_smoothing,
  modalities)(outputs, batch)`, the objective's (`Objective.loss` of
  `mmjax.objectives`: the mean cross-entropy for "classification", the
  symmetric InfoNCE over the global batch for "contrastive"), plus every
  value the model sows into its "losses" collection; BatchNorm statistics
  ("batch_stats") are updated from the batch.

  The metrics are replicated float32 scalars: `loss` (the objective's loss,
  nats, without the extra losses), the objective's metrics (`accuracy` for
  classification; `logit_scale`, `temperature` and the in-batch accuracy of
  both directions for contrastive), `learning_rate`, `grad_norm` (global L2
  norm).

  Mixed precision (`dtype` "bfloat16" or "float16"): the parameters and the
  floating-point inputs are cast to `dtype` for the forward and backward
  pass, so activations and matmuls run in it, while the train_state
  (parameters, optimizer state, BatchNorm statistics) and the gradients
  stay float32 and the loss is computed from float32 logits (the policy of
  Micikevicius et al. 2018, "Mixed Precision Training", without loss
  scaling: bfloat16 has float32's exponent range).

  Training against modality laziness (`mmjax.train.balancing`; all off by
  default): `modality_dropout` (`{modality: probability}`) drops modalities
  per example through the model's presence masks (rng stream "modality");
  `aux_loss_weight` > 0 adds that weight times the mean cross-entropy of
  each unimodal head the model sows into "modality_logits" (logged as
  `aux_loss_<modality>`); `gradient_modulation` `{"name": "ogm_ge",
  "alpha", "noise", "end_step"}` scales each modality encoder's gradients
  by its OGM-GE coefficient (logged as `ogm_coefficient_<modality>`) while
  `step < end_step` (always when `end_step` < 0).

  Incomplete data: a batch's `present` (`{modality: float32 [batch]}`, the
  modalities each example has, `mmjax.data.pipeline`) is the model's
  presence mask; modality dropout treats a modality an example lacks as
  dropped (`balancing.sample_presence(available=...)`), and its auxiliary
  loss and OGM-GE score leave the examples lacking it out.

  Raises:
    ValueError: for a `dtype` outside `DTYPES`, an unknown
      gradient_modulation name, or what `loss` raises for the modalities.
  """
  compute_dtype = _compute_dtype(dtype)
  objective_loss = loss(label_smoothing, tuple(modalities))
  dropout = {m: p for m, p in (modality_dropout or {}).items()
             if m in modalities and p > 0}
  modulation = {"name": "none", "alpha": 0.5, "noise": True, "end_step": -1,
                **dict(gradient_modulation or {})}
  if modulation["name"] not in balancing.GRADIENT_MODULATIONS:
    raise ValueError(f"gradient_modulation.name must be one of "
                     f"{balancing.GRADIENT_MODULATIONS}, got {modulation['name']!r}")

  def train_step(state: TrainState, batch: Batch):
    rng = jax.random.fold_in(jax.random.key(seed), state.step)
    rngs = {"dropout": jax.random.fold_in(rng, 0),
            "augment": jax.random.fold_in(rng, 1)}
    available = batch.get(PRESENT)
    if available is not None:  # the dataset's modalities: the model's only
      available = {m: available[m] for m in modalities}
    present = available
    if dropout:
      present = balancing.sample_presence(
          jax.random.fold_in(rng, 2), batch["label"].shape[0],
          tuple(modalities), dropout, available)

    def loss_fn(params):
      variables = state.variables(cast_floating(params, compute_dtype))
      inputs = cast_floating(dict(batch), compute_dtype)
      outputs, updates = state.apply_fn(
          variables, inputs, present, train=True, rngs=rngs,
          mutable=["batch_stats", "losses", "modality_logits"])
      outputs = cast_floating(outputs, jnp.float32)
      updates = cast_floating(updates, jnp.float32)
      loss, objective_metrics = objective_loss(outputs, batch)
      extra = sum((jnp.sum(x) for x in jax.tree.leaves(updates.get("losses", {}))),
                  jnp.zeros((), jnp.float32))
      modality_logits = {m: v[0] for m, v in
                         updates.get("modality_logits", {}).items()}
      aux = balancing.auxiliary_losses(modality_logits, batch["label"],
                                       label_smoothing, available)
      if aux and aux_loss_weight > 0:
        extra = extra + aux_loss_weight * sum(aux.values())
      return loss + extra, (objective_metrics, updates.get("batch_stats", {}),
                            loss, modality_logits, aux)

    (_, (objective_metrics, batch_stats, loss, modality_logits, aux)), grads = (
        jax.value_and_grad(loss_fn, has_aux=True)(state.params))
    step_metrics = {f"aux_loss_{m}": v for m, v in aux.items()}
    if modulation["name"] == "ogm_ge" and modality_logits:
      coefficients = balancing.ogm_ge_coefficients(
          balancing.modality_scores(modality_logits, batch["label"],
                                    available),
          modulation["alpha"])
      if modulation["end_step"] >= 0:
        active = state.step < modulation["end_step"]
        coefficients = {m: jnp.where(active, k, 1.0)
                        for m, k in coefficients.items()}
      modulated = balancing.modulate_gradients(
          grads, coefficients, jax.random.fold_in(rng, 3),
          noise=modulation["noise"])
      if modulation["end_step"] >= 0:
        modulated = jax.tree.map(lambda a, b: jnp.where(active, a, b),
                                 modulated, grads)
      grads = modulated
      step_metrics.update({f"ogm_coefficient_{m}": k
                           for m, k in coefficients.items()})
    new_state = state.apply_gradients(grads=grads).replace(
        batch_stats=batch_stats)
    step_metrics.update({
        "loss": loss,
        **objective_metrics,
        "learning_rate": schedule(state.step),
        "grad_norm": optax.global_norm(grads),
    })
    return new_state, step_metrics

  replicated = parallel.replicated(mesh)
  state_sharding = replicated if state_sharding is None else state_sharding
  return jax.jit(train_step,
                 in_shardings=(state_sharding, parallel.data_sharding(mesh)),
                 out_shardings=(state_sharding, replicated),
                 donate_argnums=(0,))


def make_train_step_from_config(mesh: Mesh, config, objective,
                                schedule: optax.Schedule,
                                state_sharding: Any = None) -> Callable[
                                    [TrainState, Batch], Tuple[TrainState, Dict]]:
  """`make_train_step` with the loss of `objective` (a
  `mmjax.objectives.Objective`) and every option read from an experiment
  config (seed, label_smoothing, dtype, modalities, modality_dropout,
  aux_loss_weight, gradient_modulation)."""
  return make_train_step(
      mesh, loss=objective.loss, seed=config.seed,
      label_smoothing=config.label_smoothing,
      schedule=schedule, dtype=config.dtype, modalities=config.modalities,
      modality_dropout=config.modality_dropout,
      aux_loss_weight=config.aux_loss_weight,
      gradient_modulation=config.gradient_modulation,
      state_sharding=state_sharding)


def subset_code(present: Mapping[str, jax.Array]) -> jax.Array:
  """int32 `[batch]`: which modalities each example has, as bits (bit i:
  the i-th modality of `sorted(present)`); see `subset_of`."""
  return sum((present[m] > 0.5).astype(jnp.int32) << i
             for i, m in enumerate(sorted(present)))


def subset_of(code: int, modalities: Sequence[str]) -> Tuple[str, ...]:
  """The modalities (in `modalities`' order) of a `subset_code` over
  `modalities`."""
  bits = {m: i for i, m in enumerate(sorted(modalities))}
  return tuple(m for m in modalities if code >> bits[m] & 1)


def make_eval_step(mesh: Mesh, num_classes: int,
                   dtype: str = "float32",
                   modalities: Optional[Sequence[str]] = None) -> Callable[
    [TrainState, Batch, Optional[Mapping[str, jax.Array]]], Dict]:
  """Returns `eval_step(state, batch, present) -> sums`, jitted.

  `batch` must carry `mask` (float32 `[batch]`, 0 for padding). `present`
  (`{modality: float32 [batch]}` or None) simulates missing modalities.
  Returns replicated sums over the unmasked examples: `loss_sum` (nats),
  `count`, and `confusion` (float32 `[C, C]`, rows true, columns predicted).
  The forward pass runs in `dtype` as in `make_train_step`.

  A batch with the data's presence mask (`batch["present"]`, see
  `make_train_step`) is evaluated with it, restricted to `modalities` (the
  model's; None: all of the mask's), times `present` when given; and the
  sums also hold, per subset of the dataset's modalities the examples have
  (`subset_code` over all of the mask's, `2 ** n` subsets), `subset_count`
  and `subset_correct` (float32 `[2 ** n]`).
  """
  compute_dtype = _compute_dtype(dtype)

  def eval_step(state: TrainState, batch: Batch, present=None):
    params = cast_floating(state.params, compute_dtype)
    inputs = {k: v for k, v in batch.items() if k not in ("mask", PRESENT)}
    available = batch.get(PRESENT)
    if available is not None:
      model_available = {m: available[m] for m in (modalities or available)}
      present = model_available if present is None else {
          m: p * model_available[m] if m in model_available else p
          for m, p in present.items()}
    logits = state.apply_fn(state.variables(params),
                            cast_floating(inputs, compute_dtype), present,
                            train=False).astype(jnp.float32)
    mask = batch["mask"]
    loss = losses.cross_entropy(logits, batch["label"])
    predicted = logits.argmax(-1)
    sums = {
        "loss_sum": (loss * mask).sum(),
        "count": mask.sum(),
        "confusion": metrics.confusion_matrix(
            batch["label"], predicted, num_classes, mask),
    }
    if available is not None:
      subsets = jax.nn.one_hot(subset_code(available), 2 ** len(available),
                               dtype=jnp.float32) * mask[:, None]
      correct = (predicted == batch["label"]).astype(jnp.float32)
      sums["subset_count"] = subsets.sum(axis=0)
      sums["subset_correct"] = (subsets * correct[:, None]).sum(axis=0)
    return sums

  # The state's sharding is the argument's (replicated or FSDP-sharded).
  return jax.jit(eval_step, out_shardings=parallel.replicated(mesh))


def make_embed_step(mesh: Mesh, dtype: str = "float32") -> Callable[
    [TrainState, Batch], Dict]:
  """Returns `embed_step(state, batch) -> outputs`, jitted, for the
  contrastive model's evaluation.

  `batch` must carry `mask` (float32 `[batch]`, 0 for padding) and `label`.
  The outputs are replicated (gathered to every device and process):
  `{"embeddings": {modality: float32 [batch, embed_dim]}, "logit_scale":
  float32 scalar, "mask": float32 [batch], "label": int32 [batch]}`, rows in
  the global batch's order; padding rows are there, to be dropped with
  `mask`. The forward pass runs in `dtype` as in `make_train_step`.
  """
  compute_dtype = _compute_dtype(dtype)

  def embed_step(state: TrainState, batch: Batch):
    params = cast_floating(state.params, compute_dtype)
    inputs = {k: v for k, v in batch.items() if k not in ("mask", "label")}
    output = cast_floating(state.apply_fn(
        state.variables(params), cast_floating(inputs, compute_dtype),
        train=False), jnp.float32)
    return {"embeddings": output.embeddings,
            "logit_scale": output.logit_scale,
            "mask": batch["mask"], "label": batch["label"]}

  return jax.jit(embed_step, out_shardings=parallel.replicated(mesh))


def make_modality_embed_fn(mesh: Mesh, modality: str,
                           dtype: str = "float32") -> Callable[
                               [TrainState, Any], jax.Array]:
  """Returns `embed(state, inputs) -> float32 [n, embed_dim]`, jitted: the
  contrastive model's embeddings of one modality's inputs (e.g. the class
  texts of zero-shot classification), replicated on every device (any `n`,
  no sharding)."""
  compute_dtype = _compute_dtype(dtype)

  def embed(state: TrainState, inputs):
    params = cast_floating(state.params, compute_dtype)
    return state.apply_fn(state.variables(params),
                          cast_floating(inputs, compute_dtype), modality,
                          train=False, method="embed").astype(jnp.float32)

  return jax.jit(embed, out_shardings=parallel.replicated(mesh))
