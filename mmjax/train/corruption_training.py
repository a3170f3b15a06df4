"""Training for a corrupted modality: corruption augmentation and reliability.

A fused model trained on clean inputs trusts every modality it is given,
even one that carries no information (a noisy image, speech in babble), and
falls below what it scores with that modality marked missing. Two remedies,
each a config choice the train step composes:

- corruption augmentation (`corrupt_batch`): a fraction of each batch's
  examples gets one of its modalities, one at a time, corrupted by a
  family of `mmjax.analysis.corruptions` at a random severity, so the
  encoders and the fusion block see corrupted inputs with the clean labels
  (corruption augmentation as in Hendrycks et al. 2020, "AugMix", and
  Rusak et al. 2020, "A Simple Way to Make Neural Networks Robust Against
  Diverse Image Corruptions"; one modality at a time as in modality
  dropout, Neverova et al. 2015). The families not listed are held out:
  evaluation only.
- a learned "drop this modality" decision (`reliability_losses`): a
  reliability head per modality on its encoder's embedding is trained to
  tell clean inputs from corrupted ones (binary cross-entropy on the
  augmentation's draws), or to predict whether the modality alone gets the
  example right (`reliability_targets`); at inference the model marks a modality missing
  for an example when the head's probability that it is clean falls below
  `config.reliability.threshold` (`mmjax.models.multimodal.keep_reliable`),
  and the fusion block then does exactly what it does for a missing
  modality, which modality dropout trained it for. Uncertainty-aware
  modality selection in the spirit of Zhang et al. 2023, "Provable Dynamic
  Fusion for Low-Quality Multimodal Data" (QMF), with the quality estimate
  learned from the corruptions seen in training.

Config keys (`configs/base.py: modality_balancing`):
`corruption_augmentation.probability` (the fraction of examples corrupted),
`corruption_augmentation.families` (names in
`mmjax.analysis.corruptions.CORRUPTIONS`), `reliability.loss_weight` (> 0
adds the reliability heads and their loss), `reliability.target` and
`reliability.threshold`.
"""

from typing import Dict, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from mmjax.analysis import corruptions as corruptions_lib


def families_by_modality(names: Sequence[str]) -> Dict[str, Tuple[
    corruptions_lib.Corruption, ...]]:
  """`{modality: (Corruption, ...)}` of the named families, in name order.

  Raises:
    ValueError: for a name not in `CORRUPTIONS` (the message lists them).
  """
  unknown = sorted(set(names) - set(corruptions_lib.CORRUPTIONS))
  if unknown:
    raise ValueError(
        f"config.corruption_augmentation.families: unknown corruption(s) "
        f"{unknown}; known: {sorted(corruptions_lib.CORRUPTIONS)}")
  out: Dict[str, list] = {}
  for name in names:
    corruption = corruptions_lib.CORRUPTIONS[name]
    out.setdefault(corruption.modality, []).append(corruption)
  return {m: tuple(c) for m, c in out.items()}


def _corrupt_one_modality(rng: jax.Array, x: jax.Array,
                          families: Sequence[corruptions_lib.Corruption]
                          ) -> jax.Array:
  """`x` corrupted by one family drawn uniformly, at a severity drawn
  uniformly among its levels (one draw for the whole batch)."""
  family_rng, severity_rng, apply_rng = jax.random.split(rng, 3)
  u = jax.random.uniform(severity_rng)

  def branch(corruption):
    levels = jnp.asarray(corruption.levels, jnp.float32)
    def apply(key, inputs, u):
      index = jnp.minimum((u * len(levels)).astype(jnp.int32), len(levels) - 1)
      return corruption.apply(key, inputs, levels[index]).astype(inputs.dtype)
    return apply

  family = jax.random.randint(family_rng, (), 0, len(families))
  return jax.lax.switch(family, [branch(c) for c in families], apply_rng, x, u)


def corrupt_batch(rng: jax.Array, batch: Mapping[str, jax.Array],
                  families: Mapping[str, Sequence[corruptions_lib.Corruption]],
                  probability: float,
                  available: Optional[Mapping[str, jax.Array]] = None
                  ) -> Tuple[Dict[str, jax.Array], Dict[str, jax.Array]]:
  """Corrupts one modality of a random fraction of the examples.

  Each example is selected with `probability`; a selected example gets one
  of its modalities that has families (drawn uniformly among those it has,
  `available`) replaced by its corrupted version. Per step and modality one
  family and one severity are drawn (uniformly) for the whole batch, so
  every family and level is seen over the steps at the cost of one
  corruption per modality and step. Runs under `jax.jit`.

  Args:
    rng: PRNG key.
    batch: `{modality: inputs, "label": int32 [batch], ...}`, inputs as the
      corruptions expect them: images float `[batch, height, width,
      channels]` in [0, 1], waveforms float `[batch, samples]`.
    families: `{modality: (Corruption, ...)}` (`families_by_modality`);
      modalities absent from the batch are ignored.
    probability: fraction of examples corrupted, in [0, 1] (static).
    available: optional `{modality: float32 [batch]}`, the data's presence
      mask: a modality an example lacks is never the one corrupted.

  Returns:
    `(batch, corrupted)`: the batch with the corrupted inputs (other keys
    unchanged) and `{modality: float32 [batch]}`, 1.0 where that example's
    modality was corrupted, for every modality of `families` in the batch.
  """
  names = [m for m in families if m in batch and families[m]]
  out = dict(batch)
  if not names:
    return out, {}
  size = batch["label"].shape[0]
  select_rng, pick_rng, apply_rng = jax.random.split(rng, 3)
  has = jnp.ones((size, len(names)), bool)
  if available is not None:
    has = jnp.stack([available[m] > 0.5 if m in available
                     else jnp.ones((size,), bool) for m in names], axis=1)
  selected = jax.random.uniform(select_rng, (size,)) < probability
  scores = jnp.where(has, jax.random.uniform(pick_rng, has.shape), -1.0)
  pick = (jax.nn.one_hot(scores.argmax(axis=1), len(names), dtype=bool)
          & has & selected[:, None])
  corrupted = {}
  for i, m in enumerate(names):
    x = batch[m]
    noisy = _corrupt_one_modality(jax.random.fold_in(apply_rng, i), x,
                                  families[m])
    where = pick[:, i].reshape((size,) + (1,) * (x.ndim - 1))
    out[m] = jnp.where(where, noisy, x)
    corrupted[m] = pick[:, i].astype(jnp.float32)
  return out, corrupted


RELIABILITY_TARGETS = ("corruption", "true_class_probability")


def reliability_targets(target: str, corrupted: Mapping[str, jax.Array],
                        modality_logits: Mapping[str, jax.Array],
                        labels: jax.Array) -> Dict[str, jax.Array]:
  """What each reliability head learns to predict, `{modality: [batch]}`
  in [0, 1] (1: use the modality), without gradient.

  - "corruption": 1 for a clean input, 0 for one `corrupt_batch` corrupted
    (every modality of `modality_logits` or `corrupted`).
  - "true_class_probability": the modality's unimodal auxiliary head's
    probability of the true class (TCP; Corbiere et al. 2019, "Addressing
    Failure Prediction by Learning Model Confidence"; per modality as in
    Han et al. 2022, "Multimodal Dynamics: Dynamical Fusion for
    Trustworthy Multimodal Classification"): high when the modality alone
    gets the example right, corrupted or not; low when it does not, so a
    harmless corruption keeps the modality and a misleading one (or a
    misleading clean input) drops it. Needs the auxiliary heads.

  Raises:
    ValueError: for an unknown target.
  """
  if target == "corruption":
    names = set(corrupted) | set(modality_logits)
    return {m: 1.0 - corrupted[m] if m in corrupted
            else jnp.ones(labels.shape, jnp.float32) for m in names}
  if target == "true_class_probability":
    return {m: jax.lax.stop_gradient(jnp.take_along_axis(
        jax.nn.softmax(logits.astype(jnp.float32)), labels[:, None],
        axis=1)[:, 0]) for m, logits in modality_logits.items()}
  raise ValueError(f"config.reliability.target must be one of "
                   f"{RELIABILITY_TARGETS}, got {target!r}")


def reliability_losses(reliability_logits: Mapping[str, jax.Array],
                       targets: Optional[Mapping[str, jax.Array]],
                       available: Optional[Mapping[str, jax.Array]] = None
                       ) -> Dict[str, jax.Array]:
  """Mean binary cross-entropy of each modality's reliability head.

  The targets are `reliability_targets`' (1: use the modality; soft
  targets in between for "true_class_probability"); a modality without a
  target gets 1 (clean). The mean is over the examples that have the
  modality (`available`), 0 when none has it.

  Args:
    reliability_logits: `{modality: float [batch]}`, the logit that the
      modality is reliable.
    targets: `{modality: float32 [batch]}` in [0, 1], or None (all 1).
    available: optional data presence mask `{modality: float32 [batch]}`.

  Returns:
    `{modality: float32 []}` in nats.
  """
  out = {}
  for m, logits in reliability_logits.items():
    logits = logits.astype(jnp.float32)
    target = jnp.ones_like(logits)
    if targets is not None and m in targets:
      target = targets[m]
    values = optax.sigmoid_binary_cross_entropy(logits, target)
    if available is not None and m in available:
      has = available[m] > 0.5
      out[m] = (jnp.where(has, values, 0.0).sum()
                / jnp.maximum(has.sum(), 1))
    else:
      out[m] = values.mean()
  return out


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks `config.corruption_augmentation` and `config.reliability`
  (absent in configs from before them: nothing to check).

  Raises:
    ValueError: naming the key: a probability outside [0, 1], an unknown
      family, a probability > 0 without a family of the model's
      modalities, a negative reliability.loss_weight, an unknown
      reliability.target or "true_class_probability" without auxiliary
      heads, reliability
      heads without corruption augmentation (they would only ever see clean
      targets), or a threshold outside (0, 1).
  """
  augmentation = config.get("corruption_augmentation")
  probability = 0.0
  if augmentation is not None:
    probability = augmentation.probability
    if not 0.0 <= probability <= 1.0:
      raise ValueError(f"config.corruption_augmentation.probability must be "
                       f"in [0, 1], got {probability}")
    families = families_by_modality(augmentation.families)
    # Families of a modality the model lacks are ignored (the list is the
    # experiment's train-time families, shared by its unimodal baselines).
    if probability > 0 and not set(families) & set(config.modalities):
      raise ValueError(
          f"config.corruption_augmentation.probability > 0 needs "
          f"config.corruption_augmentation.families of a modality in "
          f"config.modalities={tuple(config.modalities)} (names in "
          f"mmjax.analysis.corruptions.CORRUPTIONS), got "
          f"{tuple(augmentation.families)}")
  reliability = config.get("reliability")
  if reliability is None:
    return
  if reliability.loss_weight < 0:
    raise ValueError(f"config.reliability.loss_weight must be >= 0, got "
                     f"{reliability.loss_weight}")
  if reliability.loss_weight > 0 and probability <= 0:
    raise ValueError(
        "config.reliability.loss_weight > 0 trains the reliability heads to "
        "tell clean from corrupted inputs: set "
        "config.corruption_augmentation.probability > 0 (and its families)")
  target = reliability.get("target", "corruption")
  if target not in RELIABILITY_TARGETS:
    raise ValueError(f"config.reliability.target must be one of "
                     f"{RELIABILITY_TARGETS}, got {target!r}")
  if (reliability.loss_weight > 0 and target == "true_class_probability"
      and config.get("aux_loss_weight", 0.0) <= 0):
    raise ValueError(
        "config.reliability.target='true_class_probability' learns each "
        "unimodal auxiliary head's probability of the true class: set "
        "config.aux_loss_weight > 0")
  if not 0.0 < reliability.threshold < 1.0:
    raise ValueError(f"config.reliability.threshold must be in (0, 1), got "
                     f"{reliability.threshold}")
