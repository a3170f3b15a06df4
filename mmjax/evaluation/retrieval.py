"""Evaluation metrics of the contrastive objective, on whole splits (numpy).

Cross-modal retrieval: every example of a split queries with one modality
(a) among the other modality's (b) embeddings of the whole split; its own
pair is the one correct answer ("a_to_b"), and likewise b -> a. Reported
per direction: recall@k (the fraction of queries whose pair ranks within
the first k) and the median rank (1-based) of the pair, as in CLIP's
(Radford et al. 2021) Flickr30k / MSCOCO retrieval tables.

Ties: candidates with exactly the pair's similarity are ordered uniformly
at random, in expectation. A query with `g` candidates strictly more similar
than its pair and `t` other candidates exactly as similar has the expected
rank `1 + g + t / 2`, and its recall@k is the probability that the pair
lands within the first k, `clip((k - g) / (t + 1), 0, 1)`. So a model that
gives every example the same embedding scores exactly chance (recall@k =
k / n, median rank (n + 1) / 2) rather than a perfect or a zero score, and
identical candidates (e.g. duplicate captions) share the rank they span. A
NaN similarity ranks below everything; a query whose own pair's similarity
is NaN gets the last rank. Similarities are computed in float64 from the
float32 embeddings and rounded to float32, so identical embeddings tie
exactly whatever the summation order.

Zero-shot classification (CLIP, section 3.1.2): each class name, put into a
text template, is embedded by the text encoder, and each example is
classified as the class whose text embedding is the most similar to its
other modality's embedding.

All functions work on the whole split in row chunks, so memory stays
`chunk_size * n` similarities.
"""

from typing import Dict, Iterator, Sequence, Tuple

import numpy as np

from mmjax.train import metrics

RECALL_KS = (1, 5, 10)
CHUNK_SIZE = 1024


def similarity(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
  """`queries @ candidates.T` in float64, rounded to float32.

  Args:
    queries: float `[n, dim]` (L2-normalised rows for cosine similarity).
    candidates: float `[m, dim]`.

  Returns:
    float32 `[n, m]`.
  """
  return (np.asarray(queries, np.float64)
          @ np.asarray(candidates, np.float64).T).astype(np.float32)


def rank_counts(similarities: np.ndarray,
                targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Per query row, how many candidates outrank or tie with its target.

  Args:
    similarities: float `[n, m]`, row i the similarities of query i to the
      m candidates.
    targets: int `[n]`, the column of each query's correct candidate.

  Returns:
    (greater, ties), int64 `[n]` each: the candidates other than the target
    with a strictly larger similarity (NaN ones included; all the others
    when the target's similarity is NaN), and those with exactly the same
    similarity.
  """
  similarities = np.asarray(similarities)
  targets = np.asarray(targets)
  n, m = similarities.shape
  if targets.shape != (n,):
    raise ValueError(f"targets must be [{n}], got {targets.shape}")
  target = similarities[np.arange(n), targets][:, None]
  others = np.ones((n, m), bool)
  others[np.arange(n), targets] = False
  ties = ((similarities == target) & others).sum(axis=1)
  greater = (~(similarities <= target) & others).sum(axis=1)
  return greater.astype(np.int64), ties.astype(np.int64)


def expected_ranks(greater: np.ndarray, ties: np.ndarray) -> np.ndarray:
  """float64 `[n]`: 1-based ranks `1 + greater + ties / 2` (ties broken
  uniformly at random, in expectation)."""
  return 1.0 + np.asarray(greater, np.float64) + np.asarray(ties) / 2.0


def recall_at_k(greater: np.ndarray, ties: np.ndarray, k: int) -> float:
  """The mean over queries of P(rank <= k) under random tie-breaking,
  `clip((k - greater) / (ties + 1), 0, 1)`."""
  greater = np.asarray(greater, np.float64)
  ties = np.asarray(ties, np.float64)
  return float(np.mean(np.clip((k - greater) / (ties + 1.0), 0.0, 1.0)))


def _chunks(n: int, chunk_size: int) -> Iterator[slice]:
  for start in range(0, n, chunk_size):
    yield slice(start, min(start + chunk_size, n))


def retrieval_counts(queries: np.ndarray, candidates: np.ndarray,
                     chunk_size: int = CHUNK_SIZE
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """`rank_counts` of paired embeddings (query i's answer is candidate i),
  computed in chunks of `chunk_size` queries.

  Raises:
    ValueError: when queries and candidates have different shapes.
  """
  queries, candidates = np.asarray(queries), np.asarray(candidates)
  if queries.shape != candidates.shape or queries.ndim != 2:
    raise ValueError(f"paired embeddings must have the same shape [n, dim], "
                     f"got {queries.shape} and {candidates.shape}")
  greater, ties = [], []
  for rows in _chunks(len(queries), chunk_size):
    g, t = rank_counts(similarity(queries[rows], candidates),
                       np.arange(rows.start, rows.stop))
    greater.append(g)
    ties.append(t)
  if not greater:
    raise ValueError("no example to rank: the split is empty")
  return np.concatenate(greater), np.concatenate(ties)


def retrieval_metrics(embeddings: Dict[str, np.ndarray],
                      modalities: Sequence[str],
                      ks: Sequence[int] = RECALL_KS,
                      chunk_size: int = CHUNK_SIZE) -> Dict[str, float]:
  """Recall@k and median rank of both directions of paired embeddings.

  Args:
    embeddings: `{modality: float [n, dim]}`, row i of each the same pair.
    modalities: (a, b).
    ks: the k of recall@k.
    chunk_size: queries per similarity block.

  Returns:
    `{"<a>_to_<b>_recall_at_<k>": float in [0, 1], "<a>_to_<b>_median_rank":
    float >= 1, and the same for "<b>_to_<a>"}`.
  """
  out = {}
  a, b = modalities
  for query, candidate in ((a, b), (b, a)):
    greater, ties = retrieval_counts(embeddings[query], embeddings[candidate],
                                     chunk_size)
    for k in ks:
      out[f"{query}_to_{candidate}_recall_at_{k}"] = recall_at_k(
          greater, ties, k)
    out[f"{query}_to_{candidate}_median_rank"] = float(
        np.median(expected_ranks(greater, ties)))
  return out


def _logsumexp(x: np.ndarray) -> np.ndarray:
  top = np.max(x, axis=1, keepdims=True)
  return (top + np.log(np.sum(np.exp(x - top), axis=1, keepdims=True)))[:, 0]


def infonce_loss(a: np.ndarray, b: np.ndarray, logit_scale: float,
                 chunk_size: int = CHUNK_SIZE) -> float:
  """The symmetric InfoNCE loss (`mmjax.train.losses.contrastive_loss`, no
  label smoothing) with the whole split as the batch: every other example
  of the split is a negative, so it is larger than a training loss over
  smaller batches (chance: log n). Float64, in chunks.

  Args:
    a, b: float `[n, dim]` paired embeddings.
    logit_scale: the model's similarity scale (1 / temperature).

  Returns:
    The loss in nats.
  """
  total = 0.0
  for query, candidate in ((a, b), (b, a)):
    query = np.asarray(query, np.float64)
    candidate = np.asarray(candidate, np.float64)
    for rows in _chunks(len(query), chunk_size):
      logits = logit_scale * (query[rows] @ candidate.T)
      positive = logits[np.arange(logits.shape[0]),
                        np.arange(rows.start, rows.stop)]
      total += float(np.sum(_logsumexp(logits) - positive))
  return total / (2 * len(a))


def class_texts(class_names: Sequence[str], template: str = "{}") -> list:
  """One text per class: `template.format(name)`, with the name's
  underscores and dashes turned into spaces ("golden_retriever" ->
  "golden retriever").

  Raises:
    ValueError: naming config.zero_shot.template when it does not format
      with one positional name (e.g. "{}" missing, or "{name}").
  """
  try:
    texts = [template.format(n.replace("_", " ").replace("-", " "))
             for n in class_names]
  except (IndexError, KeyError, ValueError) as e:
    raise ValueError(f"config.zero_shot.template {template!r} must format "
                     f"with one positional class name ('{{}}'): {e!r}") from e
  if class_names and texts[0] == template.replace("{{", "{").replace("}}", "}"):
    raise ValueError(f"config.zero_shot.template {template!r} has no '{{}}' "
                     f"for the class name")
  return texts


def zero_shot_predictions(embeddings: np.ndarray,
                          class_embeddings: np.ndarray) -> np.ndarray:
  """int64 `[n]`: for each row of `embeddings` (`[n, dim]`), the index of
  the most similar row of `class_embeddings` (`[C, dim]`); a tie goes to
  the lowest class index."""
  return np.argmax(similarity(embeddings, class_embeddings), axis=1)


def zero_shot_metrics(embeddings: np.ndarray, class_embeddings: np.ndarray,
                      labels: np.ndarray
                      ) -> Tuple[Dict[str, float], np.ndarray]:
  """Zero-shot classification scores.

  Args:
    embeddings: float `[n, dim]` of the examples (e.g. images).
    class_embeddings: float `[C, dim]`, row c the embedding of class c's
      text.
    labels: int `[n]` true classes in [0, C).

  Returns:
    (`{"zero_shot_accuracy", "zero_shot_macro_precision",
    "zero_shot_macro_recall", "zero_shot_macro_f1"}` as in
    `mmjax.train.metrics.classification_metrics`, float64 `[C, C]`
    confusion counts, rows true, columns predicted).
  """
  num_classes = len(class_embeddings)
  predictions = zero_shot_predictions(embeddings, class_embeddings)
  confusion = np.zeros((num_classes, num_classes), np.float64)
  np.add.at(confusion, (np.asarray(labels, np.int64), predictions), 1.0)
  scores = metrics.classification_metrics(confusion)
  return {f"zero_shot_{k}": v for k, v in scores.items()
          if k != "num_examples"}, confusion
