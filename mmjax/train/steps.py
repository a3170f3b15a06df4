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
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mmjax import parallel
from mmjax.train import balancing, corruption_training, losses, metrics
from mmjax.train.state import TrainState

Batch = Mapping[str, jax.Array]

# Compute dtypes of the forward-only steps (evaluation, embedding, export).
DTYPES = ("float32", "bfloat16", "float16")
# Compute dtypes of the train step: float16 would need loss scaling
# (`check_train_dtype`).
TRAIN_DTYPES = ("float32", "bfloat16")
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


def check_train_dtype(dtype: str) -> None:
  """Raises ValueError, one line naming `config.dtype`, unless `dtype` is
  one of `TRAIN_DTYPES`.

  float16 is refused rather than trained with loss scaling: its 5-bit
  exponent underflows small gradients unless the loss is scaled
  (Micikevicius et al. 2018, "Mixed Precision Training"), which would add
  a scale and a skip rule to the train step and its checkpoints, while
  bfloat16 has float32's exponent range, needs no scaling, and has
  float16's matmul rate on TPUs and on NVIDIA GPUs from Ampere (A100) on;
  only older GPUs (V100, T4) lack it. The forward-only steps (`DTYPES`)
  still accept float16.
  """
  if dtype == "float16":
    raise ValueError(
        "config.dtype='float16' is not supported for training: float16 "
        "needs loss scaling, which mmjax does not implement; use "
        "config.dtype='bfloat16' (float32's exponent range, no loss scaling)")
  if dtype not in TRAIN_DTYPES:
    raise ValueError(f"config.dtype must be one of {TRAIN_DTYPES}, got "
                     f"{dtype!r}")


def _micro_batches(mesh: Mesh, k: int):
  """`(split, join)`: `split` `[batch, ...]` -> `[k, batch / k, ...]`,
  micro-batch i being examples i, i + k, i + 2k, ... so that each device's
  slice of the global batch splits into its own k micro-batches (no data
  moves between devices); `join` is its inverse."""
  sharding = NamedSharding(mesh, PartitionSpec(None, tuple(mesh.axis_names)))

  def split(x):
    x = x.reshape((x.shape[0] // k, k) + x.shape[1:])
    return jax.lax.with_sharding_constraint(jnp.swapaxes(x, 0, 1), sharding)

  def join(x):
    return jnp.swapaxes(x, 0, 1).reshape((-1,) + x.shape[2:])
  return (lambda tree: jax.tree.map(split, tree),
          lambda tree: jax.tree.map(join, tree))


def make_train_step(mesh: Mesh, *, loss: Callable[[float, Sequence[str]],
                                                  Callable],
                    seed: int, label_smoothing: float,
                    schedule: optax.Schedule, dtype: str = "float32",
                    modalities: Sequence[str] = (),
                    modality_dropout: Optional[Mapping[str, float]] = None,
                    aux_loss_weight: float = 0.0,
                    gradient_modulation: Optional[Mapping] = None,
                    state_sharding: Any = None,
                    grad_accum_steps: int = 1,
                    corruption_augmentation: Optional[Mapping] = None,
                    reliability_loss_weight: float = 0.0,
                    reliability_target: str = "corruption") -> Callable[
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

  Mixed precision (`dtype` "bfloat16"): the parameters and the
  floating-point inputs are cast to `dtype` for the forward and backward
  pass, so activations and matmuls run in it, while the train_state
  (parameters, optimizer state, BatchNorm statistics) and the gradients
  stay float32 and the loss is computed from float32 logits (the policy of
  Micikevicius et al. 2018, "Mixed Precision Training", without loss
  scaling: bfloat16 has float32's exponent range; float16, which would
  need it, is refused: `check_train_dtype`).

  Gradient accumulation (`grad_accum_steps` k > 1): one call is still one
  optimizer update of the whole global batch, split inside the step into
  k micro-batches whose gradients a `lax.scan` sums, so that only one
  micro-batch's activations are alive at a time (as big_vision's and
  MaxText's accumulation; not `optax.MultiSteps`, whose k calls per update
  would make the step count, the learning-rate schedule, the
  `fold_in(step)` randomness, logging, evaluation and checkpoint intervals
  and `num_train_steps` count micro-batches). So the batch size stays the
  global batch size, the step count and schedule do not depend on k, and
  for the classification objective (a mean over examples) the update
  equals that of the unsplit batch up to float32 rounding (not for the
  contrastive one, whose InfoNCE would see each micro-batch's negatives
  only: `config_checks` refuses k > 1 for it). Per micro-batch
  i: the "dropout" and "augment" rngs are folded with i; modality dropout
  is drawn once for the global batch (the same draw as k = 1); each
  auxiliary loss is weighted by the micro-batch's share of the examples
  having the modality, so that their mean is the global batch's; OGM-GE's
  coefficients are computed once, from the unimodal logits of the whole
  batch, and applied to the accumulated gradient; BatchNorm normalises
  with each micro-batch's statistics (as "ghost" batch norm) and its
  running averages move once per step, towards the mean of the
  micro-batches' statistics. The metrics are the global batch's (means of
  the micro-batches' means; `grad_norm` of the accumulated gradient).
  Micro-batch i of the global batch is examples i, i + k, ...
  (`_micro_batches`).

  Training against modality laziness (`mmjax.train.balancing`; all off by
  default): `modality_dropout` (`{modality: probability}`) drops modalities
  per example through the model's presence masks (rng stream "modality");
  `aux_loss_weight` > 0 adds that weight times the mean cross-entropy of
  each unimodal head the model sows into "modality_logits" (logged as
  `aux_loss_<modality>`); `gradient_modulation` `{"name": "ogm_ge",
  "alpha", "noise", "end_step"}` scales each modality encoder's gradients
  by its OGM-GE coefficient (logged as `ogm_coefficient_<modality>`) while
  `step < end_step` (always when `end_step` < 0).

  Training for a corrupted modality (`mmjax.train.corruption_training`;
  off by default): `corruption_augmentation` (`{"probability", "families":
  names in mmjax.analysis.corruptions.CORRUPTIONS}`) corrupts one modality
  of that fraction of the examples (rng stream 4 of the step's key) before
  the forward pass, the labels unchanged; `reliability_loss_weight` > 0 adds
  that weight times each reliability head's binary cross-entropy against
  `reliability_target` ("corruption": clean vs corrupted;
  "true_class_probability": the unimodal auxiliary head's probability of
  the true class) that the model sows into "reliability" (logged as
  `reliability_loss_<modality>`; weighted per micro-batch as the auxiliary
  losses).

  Incomplete data: a batch's `present` (`{modality: float32 [batch]}`, the
  modalities each example has, `mmjax.data.pipeline`) is the model's
  presence mask; modality dropout treats a modality an example lacks as
  dropped (`balancing.sample_presence(available=...)`), and its auxiliary
  loss and OGM-GE score leave the examples lacking it out.

  Raises:
    ValueError: for a `dtype` outside `TRAIN_DTYPES` (float16 included),
      `grad_accum_steps` < 1, an unknown gradient_modulation name, an
      unknown corruption family, or what
      `loss` raises for the modalities; when traced, for a global batch not
      divisible by `grad_accum_steps` times the mesh's device count.
  """
  check_train_dtype(dtype)
  compute_dtype = jnp.dtype(dtype)
  k = grad_accum_steps
  if k < 1:
    raise ValueError(f"config.grad_accum_steps must be >= 1, got {k}")
  split, join = _micro_batches(mesh, k)
  objective_loss = loss(label_smoothing, tuple(modalities))
  dropout = {m: p for m, p in (modality_dropout or {}).items()
             if m in modalities and p > 0}
  modulation = {"name": "none", "alpha": 0.5, "noise": True, "end_step": -1,
                **dict(gradient_modulation or {})}
  if modulation["name"] not in balancing.GRADIENT_MODULATIONS:
    raise ValueError(f"gradient_modulation.name must be one of "
                     f"{balancing.GRADIENT_MODULATIONS}, got {modulation['name']!r}")

  augmentation = dict(corruption_augmentation or {})
  families = corruption_training.families_by_modality(
      augmentation.get("families", ()))
  families = {m: f for m, f in families.items() if m in modalities}
  probability = float(augmentation.get("probability", 0.0))

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
    corrupted = {}
    if families and probability > 0:
      batch, corrupted = corruption_training.corrupt_batch(
          jax.random.fold_in(rng, 4), batch, families, probability, available)

    def loss_fn(params, batch, available, present, corrupted, rngs,
                aux_weights):
      variables = state.variables(cast_floating(params, compute_dtype))
      inputs = cast_floating(dict(batch), compute_dtype)
      outputs, updates = state.apply_fn(
          variables, inputs, present, train=True, rngs=rngs,
          mutable=["batch_stats", "losses", "modality_logits", "reliability"])
      outputs = cast_floating(outputs, jnp.float32)
      updates = cast_floating(updates, jnp.float32)
      loss, objective_metrics = objective_loss(outputs, batch)
      extra = sum((jnp.sum(x) for x in jax.tree.leaves(updates.get("losses", {}))),
                  jnp.zeros((), jnp.float32))
      modality_logits = {m: v[0] for m, v in
                         updates.get("modality_logits", {}).items()}
      aux = balancing.auxiliary_losses(modality_logits, batch["label"],
                                       label_smoothing, available)
      aux = {m: v * aux_weights[m] if m in aux_weights else v
             for m, v in aux.items()}
      if aux and aux_loss_weight > 0:
        extra = extra + aux_loss_weight * sum(aux.values())
      reliability_logits = {m: v[0] for m, v in
                            updates.get("reliability", {}).items()}
      targets = (corruption_training.reliability_targets(
          reliability_target, corrupted, modality_logits, batch["label"])
                 if reliability_logits else None)
      reliability = corruption_training.reliability_losses(
          reliability_logits, targets, available)
      reliability = {m: v * aux_weights[m] if m in aux_weights else v
                     for m, v in reliability.items()}
      if reliability and reliability_loss_weight > 0:
        extra = extra + reliability_loss_weight * sum(reliability.values())
      return loss + extra, (objective_metrics, updates.get("batch_stats", {}),
                            loss, modality_logits, aux, reliability)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if k == 1:
      (_, outputs), grads = grad_fn(state.params, batch, available, present,
                                    corrupted, rngs, {})
    else:
      grads, outputs = accumulate(grad_fn, state.params, batch, available,
                                  present, corrupted, rngs)
    (objective_metrics, batch_stats, loss, modality_logits, aux,
     reliability) = outputs
    step_metrics = {f"aux_loss_{m}": v for m, v in aux.items()}
    step_metrics.update({f"reliability_loss_{m}": v
                         for m, v in reliability.items()})
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

  def accumulate(grad_fn, params, batch, available, present, corrupted,
                 rngs):
    """The mean gradient and outputs of `grad_fn` over the k micro-batches
    (modality logits re-joined into the global batch's order)."""
    size = batch["label"].shape[0]
    if size % (k * mesh.size):
      raise ValueError(
          f"config.batch_size={size} must be divisible by "
          f"config.grad_accum_steps={k} times the number of devices, "
          f"{mesh.size}: each device splits its examples into "
          f"{k} micro-batches")
    # A micro-batch's auxiliary loss is a mean over its examples having the
    # modality; weighted by k times its share of them, the mean over the
    # micro-batches is the global batch's mean.
    counts = {m: jnp.maximum((a > 0.5).sum(), 1)
              for m, a in (available or {}).items()}

    def body(grad_sum, xs):
      i, micro, micro_available, micro_present, micro_corrupted = xs
      micro_rngs = {n: jax.random.fold_in(r, i) for n, r in rngs.items()}
      weights = {m: k * (a > 0.5).sum() / counts[m]
                 for m, a in (micro_available or {}).items()}
      (_, outputs), grads = grad_fn(params, micro, micro_available,
                                    micro_present, micro_corrupted,
                                    micro_rngs, weights)
      return jax.tree.map(jnp.add, grad_sum, grads), outputs

    grad_sum, outputs = jax.lax.scan(
        body, jax.tree.map(jnp.zeros_like, params),
        (jnp.arange(k), split(dict(batch)), split(available), split(present),
         split(corrupted)))
    (objective_metrics, batch_stats, loss, modality_logits, aux,
     reliability) = outputs
    mean = lambda tree: jax.tree.map(lambda x: x.mean(0), tree)
    return jax.tree.map(lambda g: g / k, grad_sum), (
        mean(objective_metrics), mean(batch_stats), mean(loss),
        join(modality_logits), mean(aux), mean(reliability))

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
  aux_loss_weight, gradient_modulation, grad_accum_steps: 1 when absent,
  as in configs from before the key; corruption_augmentation and
  reliability.loss_weight and target: off when absent)."""
  return make_train_step(
      mesh, loss=objective.loss, seed=config.seed,
      label_smoothing=config.label_smoothing,
      schedule=schedule, dtype=config.dtype, modalities=config.modalities,
      modality_dropout=config.modality_dropout,
      aux_loss_weight=config.aux_loss_weight,
      gradient_modulation=config.gradient_modulation,
      state_sharding=state_sharding,
      grad_accum_steps=config.get("grad_accum_steps", 1),
      corruption_augmentation=config.get("corruption_augmentation"),
      reliability_loss_weight=(config.get("reliability") or {}).get(
          "loss_weight", 0.0),
      reliability_target=(config.get("reliability") or {}).get(
          "target", "corruption"))


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
