import numpy as np
import pytest
from scipy import stats

from mmjax.analysis.similarity import linear_cka


def _related(n=300, d1=12, d2=7, seed=0):
  """x and a noisy linear image y of it, of different widths."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d1)) * rng.uniform(0.5, 3.0, d1)
  y = x @ rng.standard_normal((d1, d2)) + rng.standard_normal((n, d2))
  return x, y


def _hsic_cka(x, y):
  """CKA via centred Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
  n = x.shape[0]
  h = np.eye(n) - np.ones((n, n)) / n
  def hsic(k, l):
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2
  k, l = x @ x.T, y @ y.T
  return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_identical_representations_give_one():
  x, _ = _related()
  assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_matches_centred_gram_matrix_form():
  x, y = _related(n=60)
  # Offsets check the centring.
  x, y = x + 5.0, y - 2.0
  expected = _hsic_cka(x, y)
  assert 0.1 < expected < 0.99
  assert linear_cka(x, y) == pytest.approx(expected, abs=1e-10)


def test_invariant_to_orthogonal_transform_and_isotropic_scaling():
  x, y = _related()
  base = linear_cka(x, y)
  rotation = stats.ortho_group.rvs(x.shape[1], random_state=1)
  assert linear_cka(x @ rotation, y) == pytest.approx(base, abs=1e-10)
  assert linear_cka(x, 7.5 * y) == pytest.approx(base, abs=1e-10)
  assert linear_cka(0.01 * x @ rotation, y) == pytest.approx(base, abs=1e-10)


def test_not_invariant_to_non_isotropic_scaling():
  x, y = _related()
  scaling = np.ones(x.shape[1])
  scaling[0] = 20.0
  assert abs(linear_cka(x * scaling, y) - linear_cka(x, y)) > 0.01


def test_symmetric():
  x, y = _related()
  assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)


def test_independent_gaussians_give_small_value():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((2000, 4))
  y = rng.standard_normal((2000, 4))
  # E[CKA] is about sqrt(d1 d2) / n = 0.002 here.
  assert linear_cka(x, y) < 0.05
  # A related pair of the same size is far above it.
  assert linear_cka(x, x[:, :2] + 0.5 * y[:, :2]) > 0.3


def test_rejects_bad_inputs():
  x = np.ones((5, 3))
  with pytest.raises(ValueError, match=r"\[n, d\]"):
    linear_cka(np.ones(5), x)
  with pytest.raises(ValueError, match="same number of examples"):
    linear_cka(x, np.ones((4, 3)))
  with pytest.raises(ValueError, match="at least 2"):
    linear_cka(np.ones((1, 3)), np.ones((1, 2)))
  with pytest.raises(ValueError, match="constant"):
    linear_cka(x, np.random.default_rng(0).standard_normal((5, 2)))
