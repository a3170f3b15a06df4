"""Classification and contrastive losses."""

from typing import Tuple

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray,
                  label_smoothing: float = 0.0) -> jnp.ndarray:
  """Softmax cross-entropy per example, with optional label smoothing.

  Args:
    logits: float32 `[batch, num_classes]`.
    labels: int32 `[batch]` class indices.
    label_smoothing: probability mass spread uniformly over all classes
      (Szegedy et al., 2016, "Rethinking the Inception Architecture").

  Returns:
    float32 `[batch]` losses in nats.
  """
  targets = optax.smooth_labels(
      jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def contrastive_loss(a: jnp.ndarray, b: jnp.ndarray, logit_scale: jnp.ndarray,
                     label_smoothing: float = 0.0
                     ) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Symmetric InfoNCE over a batch of pairs (CLIP's loss).

  `logits = logit_scale * a @ b.T` compares every `a` with every `b` of the
  batch; pair i is the positive of row i and of column i (labels = the
  diagonal) and the other `batch - 1` examples are its negatives. The loss
  is the mean of the a->b (rows) and b->a (columns) softmax cross-entropies
  (van den Oord et al. 2018, "Representation Learning with Contrastive
  Predictive Coding"; Radford et al. 2021, "Learning Transferable Visual
  Models From Natural Language Supervision").

  Under `jax.jit` with `a` and `b` sharded along the batch axis of a mesh
  (the train step's global batch), `a @ b.T` is the similarity of the
  GLOBAL batch: XLA's SPMD partitioner all-gathers the operand it needs, so
  every example has the negatives of every device, and the loss equals the
  one-device loss of the same global batch (tests/train/
  test_contrastive.py checks both on 8 CPU devices).

  Args:
    a: float `[batch, dim]` embeddings of the first modality (L2-normalised
      for cosine similarities).
    b: float `[batch, dim]` embeddings of the second modality, row i paired
      with row i of `a`.
    logit_scale: float scalar, 1 / temperature.
    label_smoothing: as in `cross_entropy`, over the batch's candidates.

  Returns:
    (float32 scalar loss in nats, float32 `[batch, batch]` logits).

  Raises:
    ValueError: for `a` and `b` of different shapes or not rank 2.
  """
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(f"contrastive_loss expects a and b of the same shape "
                     f"[batch, dim], got {a.shape} and {b.shape}")
  a, b = a.astype(jnp.float32), b.astype(jnp.float32)
  logits = jnp.asarray(logit_scale, jnp.float32) * (a @ b.T)
  labels = jnp.arange(a.shape[0])
  a_to_b = cross_entropy(logits, labels, label_smoothing).mean()
  b_to_a = cross_entropy(logits.T, labels, label_smoothing).mean()
  return 0.5 * (a_to_b + b_to_a), logits
