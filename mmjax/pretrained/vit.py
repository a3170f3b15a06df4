"""Hugging Face ViT checkpoints (`model_type` "vit") into the `vit` encoder.

ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers
for Image Recognition at Scale"), as `transformers.ViTModel` computes it:
non-overlapping patches embedded by a Conv2d with bias, a CLS token
prepended, learned positions added to every token, pre-LayerNorm layers
(`layernorm_before`, `layernorm_after`), a final LayerNorm (`layernorm`) and
an optional pooler (Dense + tanh on the CLS token). Its `last_hidden_state`
is the `vit` encoder's output with pool "all" (CLS, then the patches in
row-major order) and its `pooler_output` that of pool "cls" with pooler
"dense_tanh"; pool and pooler are the user's choice (overrides of
`pretrained_encoder_config`), the rest the checkpoint fixes.

Images: Hugging Face takes `pixel_values` `[batch, channels, height, width]`,
mmjax `[batch, height, width, channels]` (the same values, transposed).

The position table is not resized: the images must have the checkpoint's
`image_size` (else the position embedding's shape differs, and loading names
it).
"""

from typing import Any, Dict, Mapping, Tuple

import numpy as np

from mmjax.pretrained.families import FAMILIES, Family
from mmjax.pretrained.weight_map import (LayerNames, WeightSource, conv2d,
                                         detect_prefix, layer_norm, linear,
                                         transformer_layer)

# A `ViTLayer`'s modules (AST's are the same).
LAYER = LayerNames(
    query="attention.attention.query", key="attention.attention.key",
    value="attention.attention.value", out="attention.output.dense",
    attention_norm="layernorm_before", fc1="intermediate.dense",
    fc2="output.dense", mlp_norm="layernorm_after")

# Hugging Face `hidden_act` -> mmjax `ACTIVATIONS` key (the same function).
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "quick_gelu": "quick_gelu",
    "relu": "relu",
}


def hf_activation(hf_config: Mapping[str, Any], default: str) -> str:
  """The mmjax activation for the config's `hidden_act`.

  Raises:
    ValueError: naming `hidden_act` when mmjax has no such function.
  """
  name = hf_config.get("hidden_act", default)
  if name not in HF_ACTIVATIONS:
    raise ValueError(f"hidden_act={name!r} is not supported; supported: "
                     f"{sorted(HF_ACTIVATIONS)}")
  return HF_ACTIVATIONS[name]


def patch_pair(patch_size: Any) -> Tuple[int, int]:
  """A config's `patch_size` (an int or a pair) as `(rows, columns)`."""
  if isinstance(patch_size, (list, tuple)):
    return int(patch_size[0]), int(patch_size[1])
  return int(patch_size), int(patch_size)


def transformer_attributes(hf_config: Mapping[str, Any], defaults: Mapping[
    str, Any]) -> Dict[str, Any]:
  """The `vit` attributes both ViT and CLIP configs give by the same keys;
  `defaults` are the `transformers` config class's defaults for absent keys."""
  get = lambda key: hf_config.get(key, defaults[key])
  return {
      "hidden_dim": int(get("hidden_size")),
      "num_layers": int(get("num_hidden_layers")),
      "num_heads": int(get("num_attention_heads")),
      "mlp_dim": int(get("intermediate_size")),
      "patch_size": patch_pair(get("patch_size")),
      "layer_norm_epsilon": float(get("layer_norm_eps")),
      "activation": hf_activation(hf_config, defaults["hidden_act"]),
      "positional_embedding": "learned",
  }


# `transformers.ViTConfig` defaults.
VIT_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12,
                "num_attention_heads": 12, "intermediate_size": 3072,
                "patch_size": 16, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}


@FAMILIES.register("vit")
class ViTFamily(Family):
  """`ViTModel` / `ViTForImageClassification` checkpoints.

  Weight names (after the prefix "" or "vit."): `embeddings.{cls_token,
  position_embeddings, patch_embeddings.projection}`,
  `encoder.layer.{i}.{layernorm_before, attention.attention.{query, key,
  value}, attention.output.dense, layernorm_after, intermediate.dense,
  output.dense}`, `layernorm`, `pooler.dense`. The classifier (and a masked
  image modelling decoder) are ignored, the pooler when the encoder has none.
  """
  model_types = ("vit",)
  encoder = "vit"
  ignore_prefixes = ("classifier.", "decoder.", "embeddings.mask_token",
                     "pooler.")
  optional_params = ("transformer/pooler",)

  def encoder_attributes(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """Raises: ValueError naming `qkv_bias` when it is False (the `vit`
    encoder's projections have biases), or an unsupported `hidden_act`."""
    if not hf_config.get("qkv_bias", True):
      raise ValueError("qkv_bias=False: the vit encoder's query/key/value "
                       "projections always have a bias")
    return {**transformer_attributes(hf_config, VIT_DEFAULTS),
            "patch_bias": True, "pre_norm": False, "final_norm": True}

  def check_encoder(self, hf_config: Mapping[str, Any],
                    encoder: Mapping[str, Any], where: str) -> None:
    """Raises: ValueError, for pooler "dense_tanh", naming `pooler_act`
    when it is not "tanh" or `pooler_output_size` when it is not
    `hidden_size`: the encoder's pooler is Dense(hidden_dim) + tanh."""
    if encoder.get("pooler") != "dense_tanh":
      return
    hidden = int(hf_config.get("hidden_size", VIT_DEFAULTS["hidden_size"]))
    unsupported = []
    if hf_config.get("pooler_act", "tanh") != "tanh":
      unsupported.append(f"pooler_act={hf_config['pooler_act']!r} (not "
                         f"'tanh')")
    size = hf_config.get("pooler_output_size") or hidden
    if int(size) != hidden:
      unsupported.append(f"pooler_output_size={size} (not hidden_size="
                         f"{hidden})")
    if unsupported:
      raise ValueError(
          f"{where}pooler='dense_tanh' is Dense(hidden_size) + tanh, but the "
          f"checkpoint's pooler has {' and '.join(unsupported)} in its "
          f"config.json: that pooler is not supported. Use pooler='none' "
          f"(pool='cls' gives the CLS output, without the checkpoint's "
          f"pooler.dense) and train a head of your own on it.")

  def weight_prefix(self, weights: Mapping[str, np.ndarray]) -> str:
    return detect_prefix(weights, "embeddings.cls_token", ("", "vit.")) or ""

  def map_weights(self, source: WeightSource,
                  hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    num_heads = int(hf_config.get("num_attention_heads",
                                  VIT_DEFAULTS["num_attention_heads"]))
    patch = "embeddings.patch_embeddings.projection"
    encoder = {f"layer_{i}": transformer_layer(
        source, f"encoder.layer.{i}.", LAYER, num_heads)
               for i in range(int(hf_config.get(
                   "num_hidden_layers", VIT_DEFAULTS["num_hidden_layers"])))}
    encoder["final_norm"] = layer_norm(source, "layernorm")
    transformer = {
        "patch_embedding": {"kernel": conv2d(source.take(f"{patch}.weight")),
                            "bias": source.take(f"{patch}.bias")},
        "cls": source.take("embeddings.cls_token"),
        "position": {
            "embedding": source.take("embeddings.position_embeddings")},
        "encoder": encoder,
    }
    # A pooler with another activation or width stays unused (ignored);
    # `check_encoder` refuses pooler "dense_tanh" for it.
    hidden = int(hf_config.get("hidden_size", VIT_DEFAULTS["hidden_size"]))
    if (source.has("pooler.dense.weight")
        and hf_config.get("pooler_act", "tanh") == "tanh"
        and int(hf_config.get("pooler_output_size") or hidden) == hidden):
      transformer["pooler"] = linear(source, "pooler.dense")
    return {"transformer": transformer}
