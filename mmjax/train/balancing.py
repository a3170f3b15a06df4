"""Training against modality laziness: the pieces the train step composes.

A fused model trained end to end leans on whichever modality lowers the
training loss fastest and leaves the others under-trained ("modality
laziness" / "modality competition"; Wang et al. 2020, "What Makes Training
Multi-modal Classification Networks Hard?"; Du et al. 2023, "On
Uni-Modal Feature Learning in Supervised Multi-Modal Learning"). Three
remedies, each selected in the config and composable:

- modality dropout: `sample_presence` drops modalities per example through
  the presence masks (Neverova et al. 2015, "ModDrop");
- unimodal auxiliary heads: `auxiliary_losses`, a classifier per modality on
  its encoder's pooled tokens (the model sows their logits into the
  "modality_logits" collection);
- on-the-fly gradient modulation with generalisation enhancement:
  `ogm_ge_coefficients` and `modulate_gradients` (Peng et al. CVPR 2022,
  "Balanced Multimodal Learning via On-the-fly Gradient Modulation").

Audio augmentation that changes the speaker lives with the other
preprocessing ops (`random_speed`, `random_noise`, `random_gain`) and in the
spectrogram encoders (SpecAugment).
"""

from typing import Dict, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from mmjax.train import losses

GRADIENT_MODULATIONS = ("none", "ogm_ge")


def sample_presence(rng: jax.Array, batch_size: int, modalities: Sequence[str],
                    dropout: Mapping[str, float],
                    available: Optional[Mapping[str, jax.Array]] = None
                    ) -> Dict[str, jax.Array]:
  """Per-example presence masks with modality `m` dropped with `dropout[m]`.

  Each modality is dropped independently; an example that would lose every
  modality instead keeps one, drawn uniformly (so no example is empty).
  With one modality nothing is ever dropped. A modality an example truly
  lacks (`available`, the data's presence mask) counts as dropped: it is
  never kept, and the one kept is drawn among those the example has (an
  example with none keeps none).

  Args:
    rng: PRNG key.
    batch_size: examples in the (global) batch.
    modalities: the model's modalities, in a fixed order.
    dropout: `{modality: probability in [0, 1]}`; absent keys mean 0.
    available: optional `{modality: float32 [batch]}`, 0.0 where the
      example lacks the modality; default all available. With every one
      available the draws are those without it.

  Returns:
    `{modality: float32 [batch]}`, 1.0 present, 0.0 dropped (or lacking).
  """
  keep_rng, pick_rng = jax.random.split(rng)
  probs = jnp.asarray([float(dropout.get(m, 0.0)) for m in modalities])
  has = jnp.ones((batch_size, len(modalities)), bool)
  if available is not None:
    has = jnp.stack([available[m] > 0.5 for m in modalities], axis=1)
  keep = (jax.random.uniform(keep_rng, (batch_size, len(modalities)))
          >= probs) & has
  # Uniform among the available ones: the first of a random permutation's
  # order that the example has (all available: `randint`, as before).
  if available is None:
    pick = jax.nn.one_hot(
        jax.random.randint(pick_rng, (batch_size,), 0, len(modalities)),
        len(modalities), dtype=bool)
  else:
    scores = jnp.where(has, jax.random.uniform(pick_rng, has.shape), -1.0)
    pick = jax.nn.one_hot(scores.argmax(axis=1), len(modalities),
                          dtype=bool) & has
  keep = jnp.where(keep.any(axis=1, keepdims=True), keep, pick)
  return {m: keep[:, i].astype(jnp.float32) for i, m in enumerate(modalities)}


def _valid_logits(logits: jax.Array,
                  available: Optional[Mapping[str, jax.Array]],
                  m: str) -> jax.Array:
  """float32 `[batch, classes]` with the rows of examples lacking `m`
  zeroed by `where` before any loss: their values (a placeholder's) reach
  neither the loss nor, even as NaN, the gradients."""
  logits = logits.astype(jnp.float32)
  if available is None or m not in available:
    return logits
  return jnp.where(available[m][:, None] > 0.5, logits, 0.0)


def _masked_mean(values: jax.Array,
                 available: Optional[Mapping[str, jax.Array]],
                 m: str) -> jax.Array:
  """Mean of float32 `[batch]` over the examples that have modality `m` (0
  when none has it); the plain mean without `available[m]`."""
  if available is None or m not in available:
    return values.mean()
  has = available[m] > 0.5
  return jnp.where(has, values, 0.0).sum() / jnp.maximum(has.sum(), 1)


def auxiliary_losses(modality_logits: Mapping[str, jax.Array],
                     labels: jax.Array,
                     label_smoothing: float = 0.0,
                     available: Optional[Mapping[str, jax.Array]] = None
                     ) -> Dict[str, jax.Array]:
  """Mean cross-entropy of each unimodal head, `{modality: float32 []}` nats.

  Args:
    modality_logits: `{modality: float [batch, num_classes]}`.
    labels: int32 `[batch]`.
    label_smoothing: as for the fused loss.
    available: optional `{modality: float32 [batch]}`, the data's presence
      mask: the mean is over the examples that have the modality (an
      example lacking it has no auxiliary loss; 0 when none has it).
  """
  return {m: _masked_mean(losses.cross_entropy(
      _valid_logits(logits, available, m), labels, label_smoothing),
                          available, m)
          for m, logits in modality_logits.items()}


def modality_scores(modality_logits: Mapping[str, jax.Array],
                    labels: jax.Array,
                    available: Optional[Mapping[str, jax.Array]] = None
                    ) -> Dict[str, jax.Array]:
  """OGM-GE's discrepancy scores: `s_m = sum_i softmax(logits_m_i)[y_i]`.

  The paper decomposes a concatenation head into per-modality halves; here
  the unimodal auxiliary heads play that role for any fusion block. With
  `available` (the data's presence mask, `{modality: float32 [batch]}`),
  `s_m` is `batch` times the mean over the examples having `m`, so that
  modalities missing in different numbers of examples compare fairly (the
  plain sum when all have it).

  Returns:
    `{modality: float32 []}`, each in [0, batch].
  """
  out = {}
  for m, logits in modality_logits.items():
    p = jnp.take_along_axis(
        jax.nn.softmax(_valid_logits(logits, available, m)),
        labels[:, None], axis=1)[:, 0]
    out[m] = (p.sum() if available is None or m not in available
              else _masked_mean(p, available, m) * p.shape[0])
  return out


def ogm_ge_coefficients(scores: Mapping[str, jax.Array],
                        alpha: float) -> Dict[str, jax.Array]:
  """Gradient coefficients `k_m = 1 - tanh(alpha * relu(rho_m - 1))`.

  `rho_m = s_m / mean_{n != m} s_n` is modality m's score ratio to the
  others (for two modalities the paper's `rho = s_a / s_v`, Peng et al. 2022,
  eq. 9-10): the dominant modality's gradients are scaled down, the others
  kept (k = 1). With one modality k = 1.

  Args:
    scores: `{modality: float32 []}` from `modality_scores`.
    alpha: modulation strength (the paper's alpha), >= 0.

  Returns:
    `{modality: float32 []}` in (0, 1], without gradient.
  """
  names = list(scores)
  if len(names) < 2:
    return {m: jnp.ones((), jnp.float32) for m in names}
  coefficients = {}
  for m in names:
    others = jnp.mean(jnp.stack([scores[n] for n in names if n != m]))
    ratio = scores[m] / jnp.maximum(others, 1e-8)
    coefficients[m] = jax.lax.stop_gradient(
        1.0 - jnp.tanh(alpha * jax.nn.relu(ratio - 1.0)))
  return coefficients


def modulate_gradients(grads, coefficients: Mapping[str, jax.Array],
                       rng: jax.Array, noise: bool):
  """Scales each `<modality>_encoder` gradient subtree by its coefficient.

  With `noise`, generalisation enhancement (GE) adds to every array of
  those subtrees Gaussian noise whose standard deviation is that array's
  gradient standard deviation (before scaling), as the paper's code does;
  the paper shows this noise restores SGD's generalisation that the
  scaling alone reduces. Other parameters (fusion block, heads) are left
  unchanged.

  Args:
    grads: the parameter gradient tree (`{"<modality>_encoder": ..., ...}`).
    coefficients: `{modality: float32 []}`.
    rng: PRNG key for the noise.
    noise: add the GE noise.

  Returns:
    The gradient tree, same structure.
  """
  grads = dict(grads)
  for i, (m, k) in enumerate(sorted(coefficients.items())):
    name = f"{m}_encoder"
    if name not in grads:
      continue
    leaves, treedef = jax.tree.flatten(grads[name])
    keys = jax.random.split(jax.random.fold_in(rng, i), len(leaves))
    new = []
    for g, key in zip(leaves, keys):
      scaled = g * k.astype(g.dtype)
      if noise:
        scaled = scaled + jnp.std(g) * jax.random.normal(key, g.shape, g.dtype)
      new.append(scaled)
    grads[name] = jax.tree.unflatten(treedef, new)
  return grads


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks the balancing keys of an experiment config.

  Raises:
    ValueError: naming the key: a dropout probability outside [0, 1], a
      negative aux_loss_weight, an unknown
      gradient_modulation.name, or OGM-GE without auxiliary heads (its
      scores come from them).
  """
  for m, p in config.modality_dropout.items():
    if not 0.0 <= p <= 1.0:
      raise ValueError(f"config.modality_dropout.{m} must be in [0, 1], got {p}")
  if config.aux_loss_weight < 0:
    raise ValueError(
        f"config.aux_loss_weight must be >= 0, got {config.aux_loss_weight}")
  gm = config.gradient_modulation
  if gm.name not in GRADIENT_MODULATIONS:
    raise ValueError(f"config.gradient_modulation.name must be one of "
                     f"{GRADIENT_MODULATIONS}, got {gm.name!r}")
  if gm.name == "ogm_ge" and config.aux_loss_weight <= 0:
    raise ValueError(
        "config.gradient_modulation.name='ogm_ge' scores each modality with "
        "its unimodal auxiliary head: set config.aux_loss_weight > 0")
  if gm.alpha < 0:
    raise ValueError(f"config.gradient_modulation.alpha must be >= 0, got {gm.alpha}")
