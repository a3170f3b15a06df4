"""Registries of model parts, selected by name from `config.model`, and the
configs built from a registered module's own defaults.

A module's hyperparameters are its dataclass attributes; `module_config`
turns them into a ConfigDict, so a config file names a block and every one of
the block's attributes becomes an overridable key
(`--config.model.fusion.num_heads=8`) while unknown keys stay errors.
"""

import dataclasses
import typing
from typing import Any, Dict, Mapping, Optional, Tuple

import ml_collections

from mmjax.registry import Registry

# Maps one modality's batch to (tokens `[batch, tokens, dim]`, mask `[batch, tokens]`).
ENCODERS = Registry("encoder", package="mmjax.models.encoders")
# Maps `{modality: tokens}`, `{modality: token mask}`, `{modality: presence}`
# to a `FusionOutput` (see `mmjax.models.fusion.base`).
FUSION = Registry("fusion block", package="mmjax.models.fusion")

# Attributes set by the model, never by a config.
_NOT_CONFIGURABLE = ("parent", "name", "num_classes")

# Training options every encoder config has beside the module's attributes:
# where its initial parameters come from (`mmjax.pretrained`: a Hugging Face
# checkpoint or an mmjax workdir; "" = random), whether it is frozen, and the
# factor on the learning rate of its parameters (`mmjax.train.optim`).
ENCODER_OPTIONS = {"init_from": "", "freeze": False, "learning_rate_scale": 1.0}


def _options(registry: Registry) -> Dict[str, Any]:
  return dict(ENCODER_OPTIONS) if registry is ENCODERS else {}


def split_options(encoder_config: Mapping[str, Any]):
  """`(module kwargs incl. "name", {option: value})` of an encoder config."""
  kwargs = {k: v for k, v in encoder_config.items() if k not in ENCODER_OPTIONS}
  options = {k: encoder_config.get(k, v) for k, v in ENCODER_OPTIONS.items()}
  return kwargs, options


def build_encoder(encoder_config: Mapping[str, Any],
                  name: Optional[str] = None) -> Any:
  """The encoder module of an encoder config.

  Args:
    encoder_config: `{"name": registered encoder, **its attributes}`,
      optionally with the `ENCODER_OPTIONS` keys (dropped here: they are
      read by `mmjax.pretrained` and `mmjax.train.optim`); a dict or a
      ConfigDict (then converted with `to_dict()`).
    name: the Flax name of the module (e.g. "image_encoder"); None: named
      by its parent, or unbound.

  Returns:
    The (unbound) Flax module `ENCODERS.get(config["name"])(**attributes,
    name=name)`.

  Raises:
    KeyError: for a config without "name" or an unregistered name
      (`UnknownNameError`).
    TypeError: for a key that is not an attribute of the encoder.
  """
  if hasattr(encoder_config, "to_dict"):
    encoder_config = encoder_config.to_dict()
  kwargs, _ = split_options(encoder_config)
  if "name" not in kwargs:
    raise KeyError(f"encoder config has no 'name' (keys {sorted(kwargs)})")
  return ENCODERS.get(kwargs.pop("name"))(**kwargs, name=name)


def module_defaults(cls) -> Dict[str, Any]:
  """`{attribute: default}` of a registered Flax module's configurable fields.

  Raises:
    TypeError: when a configurable attribute has no default.
  """
  out = {}
  for field in dataclasses.fields(cls):
    if field.name in _NOT_CONFIGURABLE or not field.init:
      continue
    if field.default is not dataclasses.MISSING:
      out[field.name] = field.default
    elif field.default_factory is not dataclasses.MISSING:
      out[field.name] = field.default_factory()
    else:
      raise TypeError(f"{cls.__name__}.{field.name} has no default; registered "
                      "modules need a default for every configurable attribute")
  return out


def literal_attributes(cls) -> Dict[str, Tuple[Any, ...]]:
  """`{attribute: allowed values}` of a module's attributes annotated
  `typing.Literal[...]` (e.g. a pool or a positional embedding kind).

  Raises:
    NameError: for an annotation that does not resolve
      (`typing.get_type_hints`).
  """
  hints = typing.get_type_hints(cls)
  return {field.name: typing.get_args(hints[field.name])
          for field in dataclasses.fields(cls)
          if typing.get_origin(hints.get(field.name)) is typing.Literal}


def module_config(registry: Registry, name: str,
                  **overrides: Any) -> ml_collections.ConfigDict:
  """`{"name": name, **defaults of the registered module, **overrides}`;
  encoders also get the `ENCODER_OPTIONS` keys.

  Raises:
    KeyError: for an unregistered name.
    ValueError: for an override that is not an attribute of the module.
  """
  cls = registry.get(name)
  defaults = {**module_defaults(cls), **_options(registry)}
  unknown = sorted(set(overrides) - set(defaults))
  if unknown:
    raise ValueError(f"{registry.kind} {name!r} has no attribute(s) {unknown}; "
                     f"its attributes: {sorted(defaults)}")
  values = {k: _config_value(v) for k, v in {**defaults, **overrides}.items()}
  return ml_collections.ConfigDict({"name": name, **values})


def _config_value(value):
  if isinstance(value, Mapping):
    return ml_collections.ConfigDict(
        {k: _config_value(v) for k, v in value.items()})
  return value


def check_module_config(registry: Registry, config: Mapping[str, Any],
                        where: str) -> None:
  """Checks a `{"name": ..., **attributes}` config against its module.

  Args:
    registry: the registry the name belongs to.
    config: the config as a dict.
    where: the config path, e.g. "config.model.fusion", for the message.

  Raises:
    KeyError: for an unregistered name.
    ValueError: naming `<where>.<key>` for a key the module does not have,
      or for a value outside the allowed ones of an attribute annotated
      `Literal` (naming the value and the allowed ones).
  """
  cls = registry.get(config["name"])
  known = set(module_defaults(cls)) | set(_options(registry))
  unknown = sorted(set(config) - known - {"name"})
  if unknown:
    raise ValueError(
        f"{where}: {registry.kind} {config['name']!r} has no attribute(s) "
        f"{unknown} (its attributes: {sorted(known)}). Build the config from "
        f"the block's own defaults instead of renaming another block's "
        f"config, e.g. --config=configs/<file>.py:fusion={config['name']}")
  for key, allowed in literal_attributes(cls).items():
    if key in config and config[key] not in allowed:
      raise ValueError(f"{where}.{key}: {config[key]!r} is not one of "
                       f"{', '.join(map(repr, allowed))}")
