"""Optimizer and learning-rate schedule from `config.optimizer` (optax)."""

import ml_collections
import optax


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
  import jax  # pylint: disable=g-import-not-at-top
  return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(opt: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  """Gradient clipping + AdamW / SGD with the configured schedule.

  Args:
    opt: `config.optimizer` with name ("adamw" or "sgd"), learning_rate,
      weight_decay, schedule, warmup_steps, end_learning_rate_factor,
      grad_clip_norm (0 disables), b1/b2 (AdamW), momentum (SGD).
    total_steps: number of training steps (decay length).

  Raises:
    ValueError: for an unknown optimizer name.
  """
  schedule = learning_rate_schedule(opt, total_steps)
  if opt.name == "adamw":
    base = optax.adamw(schedule, b1=opt.b1, b2=opt.b2,
                       weight_decay=opt.weight_decay, mask=_decay_mask)
  elif opt.name == "sgd":
    base = optax.chain(
        optax.add_decayed_weights(opt.weight_decay, mask=_decay_mask),
        optax.sgd(schedule, momentum=opt.momentum))
  else:
    raise ValueError(
        f"config.optimizer.name must be adamw|sgd, got {opt.name!r}")
  if opt.grad_clip_norm:
    return optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), base)
  return base
