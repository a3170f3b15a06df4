"""mmjax.evaluation.retrieval: cross-modal retrieval ranks, recall@k and
median rank with ties, and zero-shot classification scores (numpy)."""

import numpy as np
import pytest

from mmjax.evaluation import retrieval
from mmjax.train import metrics


def normalised(rng, n, d):
  x = rng.normal(size=(n, d)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ranks_and_recall_by_hand():
  # Query i's answer is column targets[i]. Ranks (1-based, ties broken at
  # random in expectation: 1 + greater + ties / 2):
  #   row 0: target 0.9, nothing above                 -> rank 1
  #   row 1: target 0.5, above: 0.7, 0.6              -> rank 3
  #   row 2: target 0.4, tied with one other, none above -> rank 1.5
  #   row 3: target 0.2, above: 0.3, tied with two      -> rank 3 (2 + 2/2)
  #   row 4: target NaN                                 -> last rank, 5
  sims = np.array([
      [0.9, 0.1, 0.2, 0.3, 0.0],
      [0.7, 0.5, 0.6, 0.1, 0.0],
      [0.4, 0.1, 0.4, 0.0, 0.3],
      [0.2, 0.3, 0.2, 0.2, 0.1],
      [0.5, 0.1, 0.2, 0.3, np.nan],
  ], np.float32)
  targets = np.array([0, 1, 2, 3, 4])
  greater, ties = retrieval.rank_counts(sims, targets)
  np.testing.assert_array_equal(greater, [0, 2, 0, 1, 4])
  np.testing.assert_array_equal(ties, [0, 0, 1, 2, 0])
  np.testing.assert_allclose(retrieval.expected_ranks(greater, ties),
                             [1, 3, 1.5, 3, 5])
  # P(rank <= 1): 1, 0, 1/2 (two tied for first), 0, 0.
  assert retrieval.recall_at_k(greater, ties, 1) == pytest.approx(1.5 / 5)
  # P(rank <= 2): 1, 0, 1, 1/3 (one above, three tied for ranks 2-4), 0.
  assert retrieval.recall_at_k(greater, ties, 2) == pytest.approx(
      (1 + 0 + 1 + 1 / 3 + 0) / 5)
  assert retrieval.recall_at_k(greater, ties, 5) == 1.0
  # A NaN candidate ranks above a real target (never helps the model).
  g, t = retrieval.rank_counts(np.array([[0.5, np.nan, 0.1]]), np.array([0]))
  assert (int(g[0]), int(t[0])) == (1, 0)


def brute_force_counts(queries, candidates):
  """(greater, ties) of candidate i for query i, counted one pair at a time
  from float32-rounded float64 dot products."""
  greater, ties = [], []
  for i, q in enumerate(queries):
    s = [np.float32(np.dot(q.astype(np.float64), c.astype(np.float64)))
         for c in candidates]
    greater.append(sum(x > s[i] for x in s))
    ties.append(sum(x == s[i] for j, x in enumerate(s) if j != i))
  return np.array(greater), np.array(ties)


def test_retrieval_metrics_against_direct_computation():
  rng = np.random.default_rng(0)
  a, b = normalised(rng, 40, 6), normalised(rng, 40, 6)
  b[:10] = 0.8 * a[:10] + 0.2 * b[:10]  # some good pairs
  b[21] = b[20]  # a duplicate candidate: exact ties
  result = retrieval.retrieval_metrics({"x": a, "y": b}, ("x", "y"),
                                       ks=(1, 5, 10), chunk_size=7)
  for query, cand, name in ((a, b, "x_to_y"), (b, a, "y_to_x")):
    greater, ties = brute_force_counts(query, cand)
    ranks = 1 + greater + ties / 2
    assert result[f"{name}_median_rank"] == np.median(ranks)
    for k in (1, 5, 10):
      # Rank r spans the positions greater + 1 .. greater + ties + 1, each
      # equally likely.
      p = [np.mean([g + 1 + j <= k for j in range(t + 1)])
           for g, t in zip(greater, ties)]
      assert result[f"{name}_recall_at_{k}"] == pytest.approx(np.mean(p))
    if name == "x_to_y":
      assert ties[20] == ties[21] == 1 and ties.sum() == 2
  assert result["x_to_y_recall_at_1"] > 1 / 40  # above chance: good pairs


def test_collapsed_embeddings_score_chance():
  n = 8
  same = np.ones((n, 4), np.float32) / 2
  result = retrieval.retrieval_metrics({"a": same, "b": same}, ("a", "b"))
  assert result["a_to_b_recall_at_1"] == pytest.approx(1 / n)
  assert result["a_to_b_recall_at_5"] == pytest.approx(5 / n)
  assert result["a_to_b_median_rank"] == (n + 1) / 2


# Zero-shot classification.


def test_zero_shot_texts_and_metrics():
  assert retrieval.class_texts(["golden_retriever", "t-shirt"],
                               "a photo of a {}.") == [
                                   "a photo of a golden retriever.",
                                   "a photo of a t shirt."]
  for bad in ("a photo", "{name}", "{0} {1}"):
    with pytest.raises(ValueError, match="config.zero_shot.template"):
      retrieval.class_texts(["cat"], bad)
  classes = np.eye(3, dtype=np.float32)
  # Examples near class 0, 1, 2, 2, 0, 1 (the last two mislabelled).
  examples = np.array([[1, .1, 0], [0, 1, .2], [.1, 0, 1], [0, .3, .9],
                       [.9, .2, 0], [0, .8, .1]], np.float32)
  labels = np.array([0, 1, 2, 2, 1, 0])
  np.testing.assert_array_equal(
      retrieval.zero_shot_predictions(examples, classes), [0, 1, 2, 2, 0, 1])
  scores, confusion = retrieval.zero_shot_metrics(examples, classes, labels)
  expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 2]], np.float64)
  np.testing.assert_array_equal(confusion, expected)
  reference = metrics.classification_metrics(expected)
  assert scores["zero_shot_accuracy"] == pytest.approx(4 / 6)
  # Per class F1: 0.5, 0.5, 1.0.
  assert scores["zero_shot_macro_f1"] == pytest.approx(2 / 3)
  assert scores["zero_shot_macro_f1"] == reference["macro_f1"]
