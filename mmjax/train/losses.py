"""Classification losses."""

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
