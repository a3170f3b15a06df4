"""config.objective "contrastive": a dual encoder trained with the symmetric
InfoNCE loss over the global batch (Radford et al. 2021, CLIP; van den Oord
et al. 2018), evaluated by cross-modal retrieval and zero-shot
classification."""

from typing import Any, Callable, Dict, Sequence, Tuple

import jax
import jax.numpy as jnp
import ml_collections

from mmjax.evaluation.contrastive import ContrastiveEvaluator
from mmjax.models.contrastive import build_contrastive_model
from mmjax.objectives.base import Objective, register
from mmjax.train import losses


def contrastive_loss(label_smoothing: float, modalities: Sequence[str]
                     ) -> Callable[[Any, Dict[str, jax.Array]],
                                   Tuple[jax.Array, Dict[str, jax.Array]]]:
  """The loss of config.objective "contrastive": symmetric InfoNCE over the
  global batch (`losses.contrastive_loss`) of the two modalities (a, b).

  Returns:
    `fn(output, batch) -> (loss, metrics)`: from a
    `mmjax.models.contrastive.ContrastiveOutput` (float32 `[batch, dim]`
    per modality, scalar logit scale), the loss (nats, float32 scalar) and
    float32 scalars `logit_scale`, `temperature` (1 / logit_scale),
    `accuracy_<a>_to_<b>` (fraction of rows whose largest logit is their
    pair) and `accuracy_<b>_to_<a>` (the same per column), in-batch.

  Raises:
    ValueError: unless `modalities` names exactly two modalities.
  """
  if len(modalities) != 2:
    raise ValueError(f"config.objective='contrastive' needs exactly two "
                     f"modalities, got {tuple(modalities)}")
  a, b = modalities

  def fn(output, batch):
    del batch
    loss, logits = losses.contrastive_loss(
        output.embeddings[a], output.embeddings[b], output.logit_scale,
        label_smoothing)
    pairs = jnp.arange(logits.shape[0])
    return loss, {
        "logit_scale": output.logit_scale,
        "temperature": 1.0 / output.logit_scale,
        f"accuracy_{a}_to_{b}": (logits.argmax(1) == pairs).mean(),
        f"accuracy_{b}_to_{a}": (logits.argmax(0) == pairs).mean(),
    }
  return fn


def check_config(config: ml_collections.ConfigDict) -> None:
  """The keys of config.objective='contrastive': exactly two modalities, a
  positive `model.embed_dim`, a `zero_shot.template` with one '{}', and
  none of the classification-only options (modality dropout, auxiliary
  heads, gradient modulation, linear probe).

  Raises:
    ValueError: naming the key.
  """
  if len(config.modalities) != 2:
    raise ValueError(f"config.objective='contrastive' needs exactly two "
                     f"modalities in config.modalities, got "
                     f"{tuple(config.modalities)}")
  embed_dim = config.model.get("embed_dim")
  if not isinstance(embed_dim, int) or embed_dim < 1:
    raise ValueError(f"config.model.embed_dim must be a positive int for "
                     f"config.objective='contrastive', got {embed_dim!r}")
  template = config.get("zero_shot", {}).get("template", "{}")
  try:
    ok = template.format("x") != template.format("y")
  except (IndexError, KeyError, ValueError):
    ok = False
  if not ok:
    raise ValueError(f"config.zero_shot.template must contain one '{{}}' "
                     f"for the class name, got {template!r}")
  only = "is for config.objective='classification'; the contrastive objective has"
  dropout = {m: p for m, p in config.get("modality_dropout", {}).items() if p}
  if dropout:
    raise ValueError(f"config.modality_dropout {dropout} {only} no missing "
                     f"modalities: set it to 0")
  if config.get("aux_loss_weight", 0.0):
    raise ValueError(f"config.aux_loss_weight={config.aux_loss_weight} {only} "
                     f"no classifier heads: set it to 0")
  if config.get("gradient_modulation", {}).get("name", "none") != "none":
    raise ValueError(f"config.gradient_modulation.name="
                     f"{config.gradient_modulation.name!r} {only} no "
                     f"classifier heads: set it to 'none'")
  if config.get("linear_probe", False):
    raise ValueError(f"config.linear_probe {only} no classifier head; freeze "
                     f"encoders with config.model.encoders.<m>.freeze "
                     f"instead")


CONTRASTIVE = register(Objective(
    name="contrastive", build_model=build_contrastive_model,
    loss=contrastive_loss, make_evaluator=ContrastiveEvaluator,
    check_config=check_config))
