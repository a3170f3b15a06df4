"""config.objective "classification": the multimodal classifier, softmax
cross-entropy on `label`, accuracy / macro F1 evaluation."""

from typing import Callable, Dict, Sequence, Tuple

import jax

from mmjax.evaluation.classification import make_classification_evaluator
from mmjax.models.multimodal import build_classifier
from mmjax.objectives.base import Objective, register
from mmjax.train import losses


def classification_loss(label_smoothing: float, modalities: Sequence[str]
                        ) -> Callable[[jax.Array, Dict[str, jax.Array]],
                                      Tuple[jax.Array, Dict[str, jax.Array]]]:
  """The loss of config.objective "classification".

  Returns:
    `fn(logits, batch) -> (loss, metrics)`: from float32 logits `[batch,
    num_classes]` and int32 `batch["label"]` `[batch]`, the mean softmax
    cross-entropy (nats, float32 scalar) and `{"accuracy"}`.
  """
  del modalities

  def fn(logits, batch):
    loss = losses.cross_entropy(logits, batch["label"], label_smoothing)
    return loss.mean(), {
        "accuracy": (logits.argmax(-1) == batch["label"]).mean()}
  return fn


def check_config(config) -> None:
  """Nothing beyond the checks common to every objective: the head's size
  is checked against the dataset by `make_classification_evaluator`."""
  del config


CLASSIFICATION = register(Objective(
    name="classification", build_model=build_classifier,
    loss=classification_loss, make_evaluator=make_classification_evaluator,
    check_config=check_config))
