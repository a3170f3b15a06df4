"""BERT checkpoints (Devlin et al. 2019) into the `text_transformer` encoder.

Reads `BertModel` checkpoints (names `embeddings.*`, `encoder.layer.{i}.*`,
`pooler.dense.*`) and the `bert.` tower of `BertFor*` checkpoints, whose
task heads (`cls.`, `classifier.`, `qa_outputs.`) are left unused. The
pooler is loaded only into an encoder with pooler "dense_tanh"; a
checkpoint saved without it (`add_pooling_layer=False`, as
`BertForMaskedLM`) loads into any other.
"""

from typing import Any, Dict, Mapping

import numpy as np

from mmjax.pretrained import weight_map as wm
from mmjax.pretrained.families import FAMILIES, Family

# `BertConfig` defaults, for keys a config.json leaves out.
DEFAULTS = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072,
            "hidden_act": "gelu", "max_position_embeddings": 512,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12}

# A `BertLayer`'s modules (post-LN: each norm after its residual sum).
LAYER = wm.LayerNames(
    query="attention.self.query", key="attention.self.key",
    value="attention.self.value", out="attention.output.dense",
    attention_norm="attention.output.LayerNorm", fc1="intermediate.dense",
    fc2="output.dense", mlp_norm="output.LayerNorm")

# Hugging Face `hidden_act` -> mmjax `activation` (same functions:
# "gelu_new" and "gelu_pytorch_tanh" are both the tanh approximation).
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh",
               "gelu_pytorch_tanh": "gelu_tanh", "quick_gelu": "quick_gelu",
               "relu": "relu"}


def activation(hf_config: Mapping[str, Any], family: str) -> str:
  """The mmjax activation of `hidden_act`.

  Raises:
    ValueError: naming an unsupported `hidden_act` and the supported ones.
  """
  act = hf_config["hidden_act"]
  if act not in ACTIVATIONS:
    raise ValueError(f"{family} checkpoint: hidden_act={act!r} is not "
                     f"supported (supported: {sorted(ACTIVATIONS)})")
  return ACTIVATIONS[act]


@FAMILIES.register("bert")
class Bert(Family):
  """BERT: post-LN, learned absolute positions, token types, embedding
  LayerNorm, CLS pooler (Dense + tanh)."""
  model_types = ("bert",)
  encoder = "text_transformer"
  ignore_prefixes = ("cls.", "classifier.", "qa_outputs.",
                     "embeddings.position_ids", "embeddings.token_type_ids")
  optional_params = ("pooler",)

  def sub_config(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    return {**DEFAULTS, **hf_config}

  def encoder_attributes(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """The encoder attributes of a BERT config.

    Raises:
      ValueError: for an unsupported `hidden_act`, a
        `position_embedding_type` other than "absolute" or cross-attention
        layers (`add_cross_attention`).
    """
    position = hf_config.get("position_embedding_type", "absolute")
    if position != "absolute":
      raise ValueError(f"bert checkpoint: position_embedding_type="
                       f"{position!r} is not supported (only 'absolute')")
    if hf_config.get("add_cross_attention", False):
      raise ValueError("bert checkpoint: add_cross_attention=True (a decoder "
                       "with cross-attention) is not supported")
    return {"vocab_size": hf_config["vocab_size"],
            "hidden_dim": hf_config["hidden_size"],
            "num_layers": hf_config["num_hidden_layers"],
            "num_heads": hf_config["num_attention_heads"],
            "mlp_dim": hf_config["intermediate_size"],
            "max_length": hf_config["max_position_embeddings"],
            "type_vocab_size": hf_config["type_vocab_size"],
            "norm_first": False,
            "layer_norm_epsilon": float(hf_config["layer_norm_eps"]),
            "activation": activation(hf_config, "bert"),
            "causal": bool(hf_config.get("is_decoder", False)),
            "embedding_norm": True,
            "final_norm": False}

  def weight_prefix(self, weights: Mapping[str, np.ndarray]) -> str:
    prefix = wm.detect_prefix(weights, "embeddings.word_embeddings.weight",
                              ("", "bert."))
    return "" if prefix is None else prefix

  def map_weights(self, source: wm.WeightSource,
                  hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    heads = hf_config["num_attention_heads"]
    embedding = lambda name: {"embedding": source.take(
        f"embeddings.{name}.weight")}
    params = {"token_embedding": embedding("word_embeddings"),
              "position_embedding": embedding("position_embeddings"),
              "type_embedding": embedding("token_type_embeddings"),
              "embedding_norm": wm.layer_norm(source, "embeddings.LayerNorm"),
              "encoder": {}}
    for i in range(hf_config["num_hidden_layers"]):
      params["encoder"][f"layer_{i}"] = wm.transformer_layer(
          source, f"encoder.layer.{i}.", LAYER, heads)
    if source.has("pooler.dense.weight"):
      params["pooler"] = wm.linear(source, "pooler.dense")
    return params
