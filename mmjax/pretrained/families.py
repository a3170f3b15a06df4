"""The registry of pretrained checkpoint families and their interface.

A family knows one published architecture (a Hugging Face `model_type`) and
the mmjax encoder that reproduces it: which encoder attributes the
checkpoint fixes, and the explicit name/layout mapping of its weights. A new
family is one file of `mmjax.pretrained` defining a `Family` subclass and one
`FAMILIES.register` (`FAMILIES` imports every module of the package on its
first lookup); the contract tests in tests/pretrained/ then build a tiny
random checkpoint of it with `transformers` and check output parity.
"""

from typing import Any, ClassVar, Dict, Mapping, Tuple

import numpy as np

from mmjax.pretrained.weight_map import WeightSource
from mmjax.registry import Registry

FAMILIES = Registry("pretrained family", package="mmjax.pretrained")


class Family:
  """One checkpoint family. Subclasses set the class attributes and methods.

  Attributes:
    model_types: `config.json` `model_type` values this family reads (e.g.
      ("bert",); a CLIP family reads "clip" and "clip_text_model").
    encoder: the registered mmjax encoder the weights load into.
    ignore_prefixes: checkpoint names that may stay unused (other heads, a
      decoder, buffers), after the prefix the family strips or as whole
      names (a head beside the tower, e.g. "classifier." beside "vit.").
    optional_params: Flax parameter path prefixes ("/"-separated, e.g.
      "transformer/pooler") that `map_weights` fills from the checkpoint but
      that the encoder has only by the user's choice (a pooler): dropped,
      their checkpoint weights unused, when the encoder has none.
    projection: the name of the Linear (no bias) that maps this tower's
      pooled output into a joint embedding space in a dual-encoder
      checkpoint (CLIP's "visual_projection", "text_projection"); "" when
      the family has none. Loaded by `mmjax.pretrained.clip`, not into the
      encoder.
  """
  model_types: ClassVar[Tuple[str, ...]] = ()
  encoder: ClassVar[str] = ""
  ignore_prefixes: ClassVar[Tuple[str, ...]] = ()
  optional_params: ClassVar[Tuple[str, ...]] = ()
  projection: ClassVar[str] = ""

  def sub_config(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """The part of `config.json` describing this tower (e.g. CLIP's
    `text_config`); default the whole config."""
    return dict(hf_config)

  def encoder_attributes(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """`{attribute: value}` of the encoder that the checkpoint fixes
    (widths, depth, heads, norm epsilon, activation, vocabulary, ...)."""
    raise NotImplementedError

  def check_encoder(self, hf_config: Mapping[str, Any],
                    encoder: Mapping[str, Any], where: str) -> None:
    """Refuses an encoder config whose user-chosen attributes (pool,
    pooler) this checkpoint cannot serve, naming the checkpoint's config
    key; `where` is prepended to the encoder's keys in messages (e.g.
    "config.model.encoders.image."). Default: none.

    Raises:
      ValueError: naming the key and what to choose instead.
    """

  def weight_prefix(self, weights: Mapping[str, np.ndarray]) -> str:
    """The prefix of this tower's weight names in the file (e.g. "bert." in a
    `BertForSequenceClassification` checkpoint)."""
    return ""

  def map_weights(self, source: WeightSource,
                  hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """The encoder's params, nested `{name: array}`, each taken from
    `source` and converted to the Flax layout."""
    raise NotImplementedError


def find_family(model_type: str, encoder: str) -> Family:
  """The family reading `model_type` checkpoints into `encoder`.

  Raises:
    ValueError: naming the model type, the encoder and what is supported.
  """
  supported = []
  for name in FAMILIES.names():
    family = FAMILIES.get(name)()
    supported.append(f"{family.encoder} <- {'|'.join(family.model_types)}")
    if model_type in family.model_types and family.encoder == encoder:
      return family
  raise ValueError(f"no pretrained family loads model_type {model_type!r} into "
                   f"encoder {encoder!r}; supported: {supported}")
