"""CLIP image towers (`model_type` "clip" or "clip_vision_model") into the
`vit` encoder.

CLIP's vision Transformer (Radford et al. 2021, "Learning Transferable
Visual Models From Natural Language Supervision"), as
`transformers.CLIPVisionModel` computes it: patches embedded by a Conv2d
without bias, a class embedding prepended, learned positions, a LayerNorm
before the encoder (`pre_layrnorm`), pre-LayerNorm layers with quick GELU,
and no final LayerNorm: `last_hidden_state` is the last layer's output
(`vit` with pool "all"); `pooler_output` is `post_layernorm` of the CLS token
(pool "cls", pooler "layer_norm"). Pool and pooler are the user's choice.

A full `CLIPModel` checkpoint loads too: the tower is its `vision_config`
and its `vision_model.` weights; the text tower stays unused. The image
projection (`visual_projection`) and `logit_scale` are not part of the
encoder: the contrastive model's `<modality>_projection` and `logit_scale`
take them (`mmjax.pretrained.clip`, `config.model.init_from`).

Images: `[batch, height, width, channels]` here, `pixel_values` `[batch,
channels, height, width]` there; the images must have the checkpoint's
`image_size` (the position table is not resized).
"""

from typing import Any, Dict, Mapping

import numpy as np

from mmjax.pretrained.families import FAMILIES, Family
from mmjax.pretrained import clip_text
from mmjax.pretrained.vit import transformer_attributes
from mmjax.pretrained.weight_map import (WeightSource, conv2d, detect_prefix,
                                         layer_norm, transformer_layer)

# `transformers.CLIPVisionConfig` defaults.
CLIP_VISION_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12,
                        "num_attention_heads": 12, "intermediate_size": 3072,
                        "patch_size": 32, "layer_norm_eps": 1e-5,
                        "hidden_act": "quick_gelu"}


@FAMILIES.register("clip_vision")
class CLIPVisionFamily(Family):
  """`CLIPModel`, `CLIPVisionModel` and `CLIPVisionModelWithProjection`
  checkpoints.

  Weight names (after the prefix "vision_model.", or "" for a
  `CLIPVisionModel` saved by transformers 5): `embeddings.{class_embedding,
  patch_embedding, position_embedding}`, `pre_layrnorm`,
  `encoder.layers.{i}.{layer_norm1, self_attn.{q,k,v,out}_proj,
  layer_norm2, mlp.fc1, mlp.fc2}`, `post_layernorm`.
  """
  model_types = ("clip", "clip_vision_model")
  encoder = "vit"
  projection = "visual_projection"
  ignore_prefixes = ("text_model.", "text_projection.", "visual_projection.",
                     "logit_scale", "classifier.", "post_layernorm.",
                     "embeddings.position_ids")
  optional_params = ("transformer/pooler_norm",)

  def sub_config(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """`vision_config` of a full "clip" config; the whole config of a
    "clip_vision_model" one."""
    if hf_config.get("model_type") == "clip":
      return dict(hf_config.get("vision_config") or {})
    return dict(hf_config)

  def encoder_attributes(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """Raises: ValueError for an unsupported `hidden_act`."""
    return {**transformer_attributes(hf_config, CLIP_VISION_DEFAULTS),
            "patch_bias": False, "pre_norm": True, "final_norm": False}

  def weight_prefix(self, weights: Mapping[str, np.ndarray]) -> str:
    prefix = detect_prefix(weights, "embeddings.class_embedding",
                           ("vision_model.", ""))
    return "vision_model." if prefix is None else prefix

  def map_weights(self, source: WeightSource,
                  hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    num_heads = int(hf_config.get(
        "num_attention_heads", CLIP_VISION_DEFAULTS["num_attention_heads"]))
    encoder = {f"layer_{i}": transformer_layer(
        source, f"encoder.layers.{i}.", clip_text.LAYER, num_heads)
               for i in range(int(hf_config.get(
                   "num_hidden_layers",
                   CLIP_VISION_DEFAULTS["num_hidden_layers"])))}
    # class_embedding `[D]` -> `[1, 1, D]`; position table `[T, D]` ->
    # `[1, T, D]` (views: a shape error still names the weight).
    cls = source.take("embeddings.class_embedding")
    positions = source.take("embeddings.position_embedding.weight")
    return {"transformer": {
        "patch_embedding": {"kernel": conv2d(
            source.take("embeddings.patch_embedding.weight"))},
        "cls": cls.reshape(1, 1, -1),
        "position": {"embedding": positions[None]},
        "pre_norm": layer_norm(source, "pre_layrnorm"),
        "encoder": encoder,
        "pooler_norm": layer_norm(source, "post_layernorm"),
    }}
