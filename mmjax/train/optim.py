"""Optimizer and learning-rate schedule from `config.optimizer` (optax), and
the parameter groups of fine-tuning: frozen encoders, a learning-rate factor
per encoder, linear probing."""

from typing import Any, Callable, Dict, NamedTuple, Optional

import jax
import ml_collections
import optax

FROZEN = "frozen"


def scaled_label(factor: float) -> str:
  """The group label of parameters whose learning rate is scaled by `factor`."""
  return f"learning_rate_x{float(factor)!r}"


def learning_rate_schedule(opt: ml_collections.ConfigDict,
                           total_steps: int) -> optax.Schedule:
  """Linear warmup then cosine decay (`optax.warmup_cosine_decay_schedule`),
  or a constant rate when `opt.schedule == "constant"`.

  Raises:
    ValueError: for an unknown schedule name or warmup_steps >= total_steps.
  """
  if opt.schedule == "constant":
    return optax.constant_schedule(opt.learning_rate)
  if opt.schedule != "warmup_cosine":
    raise ValueError(
        f"config.optimizer.schedule must be warmup_cosine|constant, got "
        f"{opt.schedule!r}")
  if opt.warmup_steps >= total_steps:
    raise ValueError(
        f"config.optimizer.warmup_steps={opt.warmup_steps} must be smaller "
        f"than config.num_train_steps={total_steps}")
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=opt.learning_rate,
      warmup_steps=opt.warmup_steps, decay_steps=total_steps,
      end_value=opt.learning_rate * opt.end_learning_rate_factor)


def _decay_mask(params):
  """Weight decay on kernels only, not on biases and norm scales (ndim < 2)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _base_optimizer(opt: ml_collections.ConfigDict,
                    schedule: optax.Schedule) -> optax.GradientTransformation:
  if opt.name == "adamw":
    return optax.adamw(schedule, b1=opt.b1, b2=opt.b2,
                       weight_decay=opt.weight_decay, mask=_decay_mask)
  if opt.name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(opt.weight_decay, mask=_decay_mask),
        optax.sgd(schedule, momentum=opt.momentum))
  raise ValueError(f"config.optimizer.name must be adamw|sgd, got {opt.name!r}")


class ParameterGroups(NamedTuple):
  """Fine-tuning groups: `labels(params)` gives each parameter a label from
  `names`: `FROZEN` or `scaled_label(factor)`; `factors` maps the latter to
  their learning-rate factor."""
  labels: Callable[[Any], Any]
  factors: Dict[str, float]
  frozen: bool


def make_optimizer(opt: ml_collections.ConfigDict, total_steps: int,
                   groups: Optional[ParameterGroups] = None
                   ) -> optax.GradientTransformation:
  """Gradient clipping + AdamW / SGD with the configured schedule.

  Args:
    opt: `config.optimizer` with name ("adamw" or "sgd"), learning_rate,
      weight_decay, schedule, warmup_steps, end_learning_rate_factor,
      grad_clip_norm (0 disables), b1/b2 (AdamW), momentum (SGD).
    total_steps: number of training steps (decay length).
    groups: optional fine-tuning groups (`parameter_groups`): parameters
      labelled `FROZEN` are never updated (no optimizer state, no weight
      decay, no part in the clipping norm); each other group has its own
      optimizer with the learning rate scaled by its factor
      (`optax.multi_transform`). None: one group.

  Raises:
    ValueError: for an unknown optimizer name.
  """
  schedule = learning_rate_schedule(opt, total_steps)
  base = _base_optimizer(opt, schedule)
  clip = ([optax.clip_by_global_norm(opt.grad_clip_norm)]
          if opt.grad_clip_norm else [])
  if groups is None:
    return optax.chain(*clip, base)
  transforms = {
      label: _base_optimizer(opt, lambda step, f=factor: schedule(step) * f)
      for label, factor in groups.factors.items()}
  if groups.frozen:
    transforms[FROZEN] = optax.set_to_zero()
  frozen = lambda params: jax.tree.map(lambda l: l == FROZEN,
                                       groups.labels(params))
  # Frozen gradients are zeroed before clipping so they take no share of the
  # global norm; multi_transform then keeps no optimizer state for them.
  return optax.chain(optax.masked(optax.set_to_zero(), frozen), *clip,
                     optax.multi_transform(transforms, groups.labels))


def parameter_groups(config: ml_collections.ConfigDict
                     ) -> Optional[ParameterGroups]:
  """The fine-tuning groups the config asks for.

  Labels per top-level parameter collection of `MultimodalModel`
  (`<modality>_encoder`, `fusion`, `head`, `<modality>_aux_head`): `FROZEN`
  for `config.model.encoders.<m>.freeze`, and with `config.linear_probe`
  for everything but the classifier heads (`head`, `*_aux_head`);
  otherwise `scaled_label` of the encoder's `learning_rate_scale` (1.0
  elsewhere).

  Returns:
    None when nothing is frozen and every factor is 1 (the plain
    optimizer, whose state checkpoints of earlier runs have).

  Raises:
    ValueError: (from the returned function) under `linear_probe` when the
      model has no `head` (decision-level fusion blocks classify inside the
      block).
  """
  options = {m: config.model.encoders[m] for m in config.modalities}
  linear_probe = config.get("linear_probe", False)
  if not linear_probe and all(not o.get("freeze", False)
                              and o.get("learning_rate_scale", 1.0) == 1.0
                              for o in options.values()):
    return None

  def label(key):
    if linear_probe:
      trained = key == "head" or key.endswith("_aux_head")
      return scaled_label(1.0) if trained else FROZEN
    modality = key[:-len("_encoder")] if key.endswith("_encoder") else None
    if modality in options:
      if options[modality].get("freeze", False):
        return FROZEN
      return scaled_label(options[modality].get("learning_rate_scale", 1.0))
    return scaled_label(1.0)

  def labels(params):
    if linear_probe and "head" not in params:
      raise ValueError(
          "config.linear_probe trains only the classifier head, but this "
          f"model has none (fusion block {config.model.fusion.name!r} "
          "classifies inside the block): use a feature-level block such as "
          "early_fusion")
    return {key: jax.tree.map(lambda _, k=key: label(k), sub)
            for key, sub in params.items()}
  factors = {1.0} | {float(o.get("learning_rate_scale", 1.0))
                     for o in options.values() if not linear_probe
                     and not o.get("freeze", False)}
  frozen = linear_probe or any(o.get("freeze", False) for o in options.values())
  return ParameterGroups(labels, {scaled_label(f): f for f in factors}, frozen)
