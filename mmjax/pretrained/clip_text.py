"""CLIP's text tower (Radford et al. 2021) into the `text_transformer`
encoder.

Reads `CLIPTextModel` checkpoints (names `embeddings.*`, `encoder.layers.*`,
`final_layer_norm.*`; `text_model.`-prefixed in those saved by transformers
4) and the `text_model.` tower of a full `CLIPModel` checkpoint (config
`text_config`), whose vision tower is left unused. Its `text_projection`
(`PROJECTION`) and `logit_scale` are not part of the encoder: the
contrastive model's `text_projection` and `logit_scale` take them
(`mmjax.pretrained.clip`, `config.model.init_from`).
"""

from typing import Any, Dict, Mapping

import numpy as np

from mmjax.pretrained import weight_map as wm
from mmjax.pretrained.bert import activation
from mmjax.pretrained.families import FAMILIES, Family

# `CLIPTextConfig` defaults, for keys a config.json leaves out.
DEFAULTS = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
            "num_hidden_layers": 12, "num_attention_heads": 8,
            "max_position_embeddings": 77, "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5, "eos_token_id": 49407}

# Before transformers PR #24773 CLIP configs had eos_token_id 2, and
# `CLIPTextModel` still pools those at the largest id (OpenAI's rule).
LEGACY_EOS_TOKEN_ID = 2


# A `CLIPEncoderLayer`'s modules (the text and vision towers share them).
LAYER = wm.LayerNames(
    query="self_attn.q_proj", key="self_attn.k_proj", value="self_attn.v_proj",
    out="self_attn.out_proj", attention_norm="layer_norm1", fc1="mlp.fc1",
    fc2="mlp.fc2", mlp_norm="layer_norm2")

@FAMILIES.register("clip_text")
class ClipText(Family):
  """CLIP text: pre-LN, causal, quick GELU, final LayerNorm, pooled at the
  end-of-text token."""
  model_types = ("clip", "clip_text_model")
  encoder = "text_transformer"
  projection = "text_projection"
  ignore_prefixes = ("vision_model.", "visual_projection.",
                     "text_projection.", "logit_scale",
                     "embeddings.position_ids")

  def sub_config(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    if hf_config.get("model_type") == "clip":
      # Old configs may carry `text_config_dict`, which transformers lets
      # override `text_config`.
      text = {**(hf_config.get("text_config") or {}),
              **(hf_config.get("text_config_dict") or {})}
    else:
      text = hf_config
    return {**DEFAULTS, **text}

  def encoder_attributes(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """The encoder attributes of a CLIP text config.

    Raises:
      ValueError: for an unsupported `hidden_act` or an `eos_token_id` that
        is not one integer.
    """
    eos = hf_config["eos_token_id"]
    if not isinstance(eos, int) or isinstance(eos, bool) or eos < 0:
      raise ValueError(f"clip_text checkpoint: eos_token_id={eos!r} is not "
                       f"supported (one non-negative integer)")
    return {"vocab_size": hf_config["vocab_size"],
            "hidden_dim": hf_config["hidden_size"],
            "num_layers": hf_config["num_hidden_layers"],
            "num_heads": hf_config["num_attention_heads"],
            "mlp_dim": hf_config["intermediate_size"],
            "max_length": hf_config["max_position_embeddings"],
            "type_vocab_size": 0,
            "norm_first": True,
            "layer_norm_epsilon": float(hf_config["layer_norm_eps"]),
            "activation": activation(hf_config, "clip_text"),
            "causal": True,
            "embedding_norm": False,
            "final_norm": True,
            "eos_token_id": -1 if eos == LEGACY_EOS_TOKEN_ID else eos}

  def weight_prefix(self, weights: Mapping[str, np.ndarray]) -> str:
    prefix = wm.detect_prefix(weights, "embeddings.token_embedding.weight",
                              ("", "text_model."))
    return "" if prefix is None else prefix

  def map_weights(self, source: wm.WeightSource,
                  hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    heads = hf_config["num_attention_heads"]
    embedding = lambda name: {"embedding": source.take(
        f"embeddings.{name}.weight")}
    params = {"token_embedding": embedding("token_embedding"),
              "position_embedding": embedding("position_embedding"),
              "encoder": {"final_norm": wm.layer_norm(source,
                                                      "final_layer_norm")}}
    for i in range(hf_config["num_hidden_layers"]):
      params["encoder"][f"layer_{i}"] = wm.transformer_layer(
          source, f"encoder.layers.{i}.", LAYER, heads)
    return params
