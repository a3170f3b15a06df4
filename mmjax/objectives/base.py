"""What a training objective is, and the registry `config.objective` names.

An `Objective` bundles everything that differs between objectives: the
model, the train step's loss, the evaluator and the config checks. Each is
registered by name in `OBJECTIVES` from its own module of this package
(`classification.py`, `contrastive.py`); the entry points (the train loop,
`--mode=evaluate`, `--mode=robustness`) call `resolve(config)` once and pass
the `Objective` down to whoever needs a part of it.
"""

import dataclasses
import difflib
from typing import Any, Callable, Dict, Sequence, Tuple

from mmjax.registry import Registry, UnknownNameError

OBJECTIVES = Registry("objective", package="mmjax.objectives")
DEFAULT = "classification"

# fn(model output (float32), batch) -> (scalar loss, {metric: scalar}).
LossFn = Callable[[Any, Dict[str, Any]], Tuple[Any, Dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Objective:
  """One training objective.

  Attributes:
    name: its `config.objective` value.
    build_model: `build_model(config) -> flax.linen.Module`.
    loss: `loss(label_smoothing, modalities) -> LossFn`, the loss of the
      one train step (`mmjax.train.steps.make_train_step`): from the
      model's float32 output and the batch, the scalar loss (nats) and the
      objective's float32 scalar metrics.
    make_evaluator: `make_evaluator(builder, config, mesh) -> evaluator`
      (`mmjax.evaluation.classification.SplitEvaluator` or a subclass).
    check_config: `check_config(config) -> None`, raising ValueError naming
      a key whose value the objective cannot use (run after the checks
      common to every objective, `mmjax.train.config_checks.check`).
  """

  name: str
  build_model: Callable[[Any], Any]
  loss: Callable[[float, Sequence[str]], LossFn]
  make_evaluator: Callable[[Any, Any, Any], Any]
  check_config: Callable[[Any], None]


def register(objective: Objective) -> Objective:
  """Registers `objective` in `OBJECTIVES` under its name; returns it."""
  return OBJECTIVES.register(objective.name)(objective)


def resolve(config) -> Objective:
  """The `Objective` of `config.objective` (configs without the key:
  "classification").

  Raises:
    ValueError: naming config.objective and the allowed values.
  """
  name = config.get("objective", DEFAULT)
  try:
    return OBJECTIVES.get(name)
  except UnknownNameError as e:
    close = difflib.get_close_matches(str(name), e.known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"config.objective must be one of {tuple(e.known)}, got "
                     f"{name!r}{hint}") from None
