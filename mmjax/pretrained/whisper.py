"""Hugging Face Whisper checkpoints (`model_type` "whisper") into the
`whisper_encoder`.

Whisper (Radford et al. 2022, "Robust Speech Recognition via Large-Scale
Weak Supervision"), as `transformers.WhisperEncoder` computes it: two
Conv1d + exact GELU (the second with stride 2), the stored sinusoidal
positions `embed_positions.weight` added, pre-LayerNorm layers
(`self_attn_layer_norm`, `final_layer_norm`, epsilon 1e-5, no key bias)
and a final LayerNorm (`layer_norm`). Its `last_hidden_state` is the
`whisper_encoder`'s output with pool "none".

Inputs: Hugging Face takes `input_features` `[batch, n_mels, frames]` of
exactly 2 * max_source_positions frames; the `whisper_encoder` takes 16 kHz
waveforms and computes the same features itself (or, with
`input_features=True`, features `[batch, frames, n_mels]`, the same values
transposed, and up to that many frames). Only the encoder is read: the
decoder, `proj_out` and the heads of `WhisperForAudioClassification` are
ignored.
"""

from typing import Any, Dict, Mapping

import numpy as np

from mmjax.pretrained.families import FAMILIES, Family
from mmjax.pretrained.weight_map import (LayerNames, WeightSource, conv1d,
                                         detect_prefix, layer_norm,
                                         transformer_layer)

# `transformers.WhisperConfig` defaults (whisper-tiny's sizes).
WHISPER_DEFAULTS = {"num_mel_bins": 80, "d_model": 384, "encoder_layers": 4,
                    "encoder_attention_heads": 6, "encoder_ffn_dim": 1536,
                    "max_source_positions": 1500, "activation_function": "gelu"}


def _get(hf_config: Mapping[str, Any], key: str) -> Any:
  return hf_config.get(key, WHISPER_DEFAULTS[key])


# A `WhisperEncoderLayer`'s modules.
LAYER = LayerNames(
    query="self_attn.q_proj", key="self_attn.k_proj", value="self_attn.v_proj",
    out="self_attn.out_proj", attention_norm="self_attn_layer_norm",
    fc1="fc1", fc2="fc2", mlp_norm="final_layer_norm")

@FAMILIES.register("whisper")
class WhisperFamily(Family):
  """`WhisperModel`, `WhisperForConditionalGeneration` and
  `WhisperForAudioClassification` checkpoints.

  Weight names (after the prefix "encoder." in `WhisperModel` and
  `WhisperForAudioClassification`, "model.encoder." in
  `WhisperForConditionalGeneration`): `conv1`, `conv2`,
  `embed_positions.weight`, `layers.{i}.{self_attn_layer_norm,
  self_attn.{q_proj, k_proj (no bias), v_proj, out_proj}, final_layer_norm,
  fc1, fc2}`, `layer_norm`.
  """
  model_types = ("whisper",)
  encoder = "whisper_encoder"
  ignore_prefixes = ("decoder.", "model.decoder.", "proj_out.", "projector.",
                     "classifier.", "layer_weights")

  def encoder_attributes(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """Raises: ValueError naming `activation_function` when it is not "gelu"
    (the `whisper_encoder`'s convolutions and MLPs use exact GELU)."""
    activation = _get(hf_config, "activation_function")
    if activation != "gelu":
      raise ValueError(f"activation_function={activation!r} is not supported: "
                       f"the whisper_encoder uses exact GELU ('gelu')")
    return {
        "n_mels": int(_get(hf_config, "num_mel_bins")),
        "hidden_dim": int(_get(hf_config, "d_model")),
        "num_layers": int(_get(hf_config, "encoder_layers")),
        "num_heads": int(_get(hf_config, "encoder_attention_heads")),
        "mlp_dim": int(_get(hf_config, "encoder_ffn_dim")),
        "max_source_positions": int(_get(hf_config, "max_source_positions")),
    }

  def weight_prefix(self, weights: Mapping[str, np.ndarray]) -> str:
    return detect_prefix(weights, "conv1.weight",
                         ("model.encoder.", "encoder.", "")) or ""

  def map_weights(self, source: WeightSource,
                  hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    num_heads = int(_get(hf_config, "encoder_attention_heads"))
    # The key projection has no bias in Whisper.
    encoder = {f"layer_{i}": transformer_layer(
        source, f"layers.{i}.", LAYER, num_heads, without_bias=("key",))
               for i in range(int(_get(hf_config, "encoder_layers")))}
    encoder["final_norm"] = layer_norm(source, "layer_norm")
    return {
        "conv1": {"kernel": conv1d(source.take("conv1.weight")),
                  "bias": source.take("conv1.bias")},
        "conv2": {"kernel": conv1d(source.take("conv2.weight")),
                  "bias": source.take("conv2.bias")},
        "embed_positions": source.take("embed_positions.weight"),
        "encoder": encoder,
    }
