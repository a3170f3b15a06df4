"""Linear Centered Kernel Alignment (Kornblith et al. 2019, "Similarity of
Neural Network Representations Revisited", ICML).

Compares two representations of the same n examples, e.g. the audio and the
image embeddings of a fusion model, or one layer across two seeds. Pure numpy
in float64.
"""

import numpy as np


def paired_representations(x, y, caller: str):
  """float64 `[n, d1]`, `[n, d2]` copies of two representations of the same
  n examples.

  Raises:
    ValueError: naming `caller`, if an input is not 2-D or the numbers of
      examples differ.
  """
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  if x.ndim != 2 or y.ndim != 2:
    raise ValueError(f"{caller} expects [n, d] inputs, got shapes "
                     f"{x.shape} and {y.shape}")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"{caller}: x and y must have the same number of "
                     f"examples, got {x.shape[0]} and {y.shape[0]}")
  return x, y


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
  """Linear CKA between two representations of the same examples.

  With X_c, Y_c the column-centred inputs (each feature minus its mean over
  the examples), the paper's linear-kernel form

    CKA(X, Y) = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F),

  which equals HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for the linear Gram
  matrices K = X X^T, L = Y Y^T. It lies in [0, 1], is 1 for x == y, and is
  invariant to orthogonal transforms and isotropic scaling of either side (not
  to arbitrary invertible linear maps). Costs O(n d1 d2) time and
  O(d1 d2 + d1^2 + d2^2) memory.

  Args:
    x: `[n, d1]` representation, any real dtype (computed in float64).
    y: `[n, d2]` representation of the same n examples in the same order; the
      widths d1 and d2 may differ.

  Returns:
    The linear CKA, a Python float in [0, 1].

  Raises:
    ValueError: if an input is not 2-D, the numbers of examples differ, n < 2,
      or a side is constant over the examples (its centred features are all
      zero, so CKA is undefined).
  """
  x, y = paired_representations(x, y, "linear_cka")
  if x.shape[0] < 2:
    raise ValueError(f"linear_cka needs at least 2 examples, got "
                     f"{x.shape[0]}")
  x = x - x.mean(axis=0)
  y = y - y.mean(axis=0)
  denominator = (np.linalg.norm(x.T @ x, "fro") *
                 np.linalg.norm(y.T @ y, "fro"))
  if denominator == 0.0:
    raise ValueError("linear_cka is undefined when a representation is "
                     "constant over the examples")
  return float(np.linalg.norm(y.T @ x, "fro") ** 2 / denominator)
