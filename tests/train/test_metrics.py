import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.train import metrics


def test_confusion_matrix_counts_and_mask():
  labels = jnp.array([0, 0, 1, 2, 2, 2])
  preds = jnp.array([0, 1, 1, 2, 0, 2])
  mask = jnp.array([1, 1, 1, 1, 1, 0], jnp.float32)
  cm = metrics.confusion_matrix(labels, preds, 3, mask)
  np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])


def test_metrics_match_hand_computation():
  # rows true, columns predicted
  cm = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]])
  m = metrics.classification_metrics(cm)
  precision = np.array([1 / 2, 1 / 2, 1 / 1])
  recall = np.array([1 / 2, 1 / 1, 1 / 2])
  f1 = 2 * precision * recall / (precision + recall)
  assert m["accuracy"] == pytest.approx(3 / 5)
  assert m["macro_precision"] == pytest.approx(precision.mean())
  assert m["macro_recall"] == pytest.approx(recall.mean())
  assert m["macro_f1"] == pytest.approx(f1.mean())
  assert m["num_examples"] == 5


def test_matches_scikit_learn_with_absent_classes():
  from sklearn import metrics as sklearn_metrics  # a dependency of librosa
  rng = np.random.default_rng(0)
  y = rng.integers(0, 4, 200)
  p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 5, 200))
  cm = metrics.confusion_matrix(jnp.array(y), jnp.array(p), 6,
                                jnp.ones(200, jnp.float32))
  m = metrics.classification_metrics(np.asarray(cm))
  labels = list(range(6))
  pr, rc, f1, _ = sklearn_metrics.precision_recall_fscore_support(
      y, p, labels=labels, average="macro", zero_division=0)
  assert m["macro_precision"] == pytest.approx(pr)
  assert m["macro_recall"] == pytest.approx(rc)
  assert m["macro_f1"] == pytest.approx(f1)
  assert m["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, p))


def test_bad_confusion_matrix():
  with pytest.raises(ValueError, match=r"\[C, C\]"):
    metrics.classification_metrics(np.zeros((2, 3)))
  with pytest.raises(ValueError, match="empty"):
    metrics.classification_metrics(np.zeros((2, 2)))
