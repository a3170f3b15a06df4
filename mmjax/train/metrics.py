"""Classification metrics from a confusion matrix.

The confusion matrix is accumulated on device in the eval step and turned
into accuracy and macro precision / recall / F1 on the host. Definitions
follow scikit-learn (`precision_recall_fscore_support(average="macro",
zero_division=0)`): a class never predicted has precision 0, a class absent
from the labels has recall 0, and the macro average is over all classes.
"""

from typing import Dict

import jax.numpy as jnp
import numpy as np


def confusion_matrix(labels: jnp.ndarray, predictions: jnp.ndarray,
                     num_classes: int, mask: jnp.ndarray) -> jnp.ndarray:
  """Counts of (true, predicted) pairs, jittable.

  Args:
    labels: int `[batch]` true classes.
    predictions: int `[batch]` predicted classes.
    num_classes: C.
    mask: float `[batch]`, 0 for padding examples (not counted).

  Returns:
    float32 `[C, C]`, rows = true class, columns = predicted class.
  """
  true = labels[:, None] == jnp.arange(num_classes)[None, :]
  pred = predictions[:, None] == jnp.arange(num_classes)[None, :]
  return jnp.einsum("bi,bj->ij", true * mask[:, None], pred.astype(jnp.float32))


def classification_metrics(confusion: np.ndarray) -> Dict[str, float]:
  """Accuracy and macro precision, recall and F1 from `[C, C]` counts.

  Raises:
    ValueError: if `confusion` is not square or holds no example.
  """
  confusion = np.asarray(confusion, np.float64)
  if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
    raise ValueError(f"confusion matrix must be [C, C], got {confusion.shape}")
  total = confusion.sum()
  if total == 0:
    raise ValueError("confusion matrix is empty: no example was evaluated")
  tp = np.diag(confusion)
  predicted = confusion.sum(axis=0)
  actual = confusion.sum(axis=1)
  precision = np.divide(tp, predicted, out=np.zeros_like(tp),
                        where=predicted > 0)
  recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp),
                 where=denom > 0)
  return {
      "accuracy": float(tp.sum() / total),
      "macro_precision": float(precision.mean()),
      "macro_recall": float(recall.mean()),
      "macro_f1": float(f1.mean()),
      "num_examples": int(total),
  }
