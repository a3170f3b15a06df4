"""k-nearest-neighbour mutual information (Kraskov, Stögbauer & Grassberger
2004, "Estimating mutual information", Phys. Rev. E 69, 066138).

Estimator 1 of the paper ("KSG"), with brute-force max-norm distances
computed in row chunks, so memory stays O(chunk * n) and n of a few thousand
is cheap. Pure numpy and scipy, float64.
"""

import numpy as np
from scipy import special

from mmjax.analysis import similarity

# Entries per [chunk, n] distance block: 2**22 float64 = 32 MiB.
_BLOCK_ENTRIES = 2 ** 22


def _as_samples(a: np.ndarray, name: str) -> np.ndarray:
  a = np.asarray(a, dtype=np.float64)
  if a.ndim == 1:
    a = a[:, None]
  if a.ndim != 2:
    raise ValueError(f"{name} must be [n] or [n, d], got shape {a.shape}")
  return a


def _max_norm_distances(rows: np.ndarray, a: np.ndarray) -> np.ndarray:
  """`[len(rows), n]` max-norm distances, one feature at a time."""
  distances = np.abs(rows[:, None, 0] - a[None, :, 0])
  for j in range(1, a.shape[1]):
    np.maximum(distances, np.abs(rows[:, None, j] - a[None, :, j]),
               out=distances)
  return distances


def ksg_mutual_information(x: np.ndarray, y: np.ndarray, k: int = 3) -> float:
  """KSG estimate (estimator 1) of the mutual information I(X; Y) in nats.

  For each sample i, eps_i is the max-norm distance to its k-th nearest
  neighbour in the joint space (max-norm of the pair of max-norms), and
  n_x(i), n_y(i) count the other samples strictly closer than eps_i in the x
  and y spaces (max-norm). Then

    I = psi(k) + psi(N) - < psi(n_x + 1) + psi(n_y + 1) >,

  with psi the digamma function and <.> the mean over the samples. The
  estimate is nearly unbiased for independent variables (it can be slightly
  negative) and its bias grows with the dimension; see
  `representation_mutual_information` for wide inputs. Exact duplicates are
  not broken by jitter: they make some eps_i zero, so add tiny noise to
  discrete data first.

  Args:
    x: `[n]` or `[n, d1]` samples, any real dtype (computed in float64).
    y: `[n]` or `[n, d2]` samples paired with `x` row by row.
    k: neighbours, 1 <= k < n; the paper recommends 2-4 (small bias).

  Returns:
    The estimate in nats, a Python float.

  Raises:
    ValueError: if an input is not 1-D or 2-D, the numbers of samples differ,
      or k is not in [1, n).
  """
  x = _as_samples(x, "x")
  y = _as_samples(y, "y")
  n = x.shape[0]
  if y.shape[0] != n:
    raise ValueError(f"ksg_mutual_information: x and y must have the same "
                     f"number of samples, got {n} and {y.shape[0]}")
  if not 1 <= k < n:
    raise ValueError(f"ksg_mutual_information needs 1 <= k < n, got k={k}, "
                     f"n={n}")
  chunk = max(1, _BLOCK_ENTRIES // n)
  psi_sum = 0.0
  for start in range(0, n, chunk):
    rows = np.arange(start, min(start + chunk, n))
    dx = _max_norm_distances(x[rows], x)
    dy = _max_norm_distances(y[rows], y)
    # A sample is not its own neighbour.
    dx[np.arange(len(rows)), rows] = np.inf
    dy[np.arange(len(rows)), rows] = np.inf
    dz = np.maximum(dx, dy)
    eps = np.partition(dz, k - 1, axis=1)[:, k - 1:k]
    n_x = (dx < eps).sum(axis=1)
    n_y = (dy < eps).sum(axis=1)
    psi_sum += (special.digamma(n_x + 1) + special.digamma(n_y + 1)).sum()
  return float(special.digamma(k) + special.digamma(n) - psi_sum / n)


def reduce_dimensions(x: np.ndarray, num_components: int) -> np.ndarray:
  """Projects onto the top principal components, each scaled to unit variance.

  PCA by SVD of the column-centred data X_c = U S V^T; the component scores
  X_c V[:, :c] = U[:, :c] S[:c] are divided by their standard deviations
  (ddof 0), which leaves sqrt(n) U[:, :c]. Whitening the components keeps the
  max-norm of a kNN estimator from being dominated by the first one.
  Components with zero variance (rank-deficient data) come out as zeros.

  Args:
    x: `[n, d]` samples, any real dtype (computed in float64).
    num_components: c, 1 <= c <= min(n, d).

  Returns:
    float64 `[n, num_components]` scores, each column of mean 0 and variance 1
    (or all zero), ordered by decreasing explained variance; signs arbitrary.

  Raises:
    ValueError: if x is not 2-D or num_components is out of range.
  """
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2:
    raise ValueError(f"reduce_dimensions expects [n, d], got shape {x.shape}")
  if not 1 <= num_components <= min(x.shape):
    raise ValueError(f"reduce_dimensions needs 1 <= num_components <= "
                     f"min(n, d) = {min(x.shape)}, got {num_components}")
  u, s, _ = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
  u, s = u[:, :num_components], s[:num_components]
  tolerance = max(x.shape) * np.finfo(np.float64).eps * max(s[0], 1e-300)
  return np.sqrt(x.shape[0]) * u * (s > tolerance)


def representation_mutual_information(x: np.ndarray, y: np.ndarray,
                                      num_components: int = 8,
                                      k: int = 3) -> float:
  """KSG mutual information between two PCA-reduced representations, nats.

  kNN estimators degrade quickly with dimension (neighbourhoods become
  uninformative and the bias grows), so each side is first reduced by
  `reduce_dimensions` to min(num_components, its width) whitened principal
  components, then `ksg_mutual_information` is applied. This is a heuristic:
  PCA keeps the high-variance directions, not necessarily the ones the two
  sides share, and the result is a lower-bound-like proxy of the information
  between the full representations. Whitening gives every kept component the
  same weight, so components beyond the shared structure (noise) dilute the
  neighbourhoods and lower the estimate (for two 3-factor embeddings with
  n = 1000: about 5 nats with 3 components, 1 with 8). Use it to compare
  models, layers or corruption levels under the same n, num_components and
  k, not as an absolute value.

  Args:
    x: `[n, d1]` representation, e.g. audio embeddings.
    y: `[n, d2]` representation of the same examples, e.g. image embeddings.
    num_components: principal components kept per side (capped at the width
      and at n).
    k: KSG neighbours, 1 <= k < n.

  Returns:
    The estimate in nats, a Python float.

  Raises:
    ValueError: if an input is not 2-D, the numbers of examples differ,
      num_components < 1, or k is not in [1, n).
  """
  x, y = similarity.paired_representations(
      x, y, "representation_mutual_information")
  if num_components < 1:
    raise ValueError(f"num_components must be >= 1, got {num_components}")
  x = reduce_dimensions(x, min(num_components, *x.shape))
  y = reduce_dimensions(y, min(num_components, *y.shape))
  return ksg_mutual_information(x, y, k=k)
