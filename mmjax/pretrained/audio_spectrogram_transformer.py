"""Hugging Face AST checkpoints (`model_type` "audio-spectrogram-transformer")
into the `spectrogram_transformer` encoder.

The Audio Spectrogram Transformer (Gong et al. 2021, "AST: Audio Spectrogram
Transformer"), as `transformers.ASTModel` computes it: `input_values`
`[batch, max_length, num_mel_bins]` (Kaldi log filter banks, normalised by
`ASTFeatureExtractor`) are read as a one-channel image with frequency rows
and time columns, cut into overlapping `patch_size` x `patch_size` patches
(stride `frequency_stride` x `time_stride`) by a Conv2d with bias, in
frequency-major order; a CLS and a distillation token (DeiT, Touvron et al.
2021) are prepended, learned positions added to every token, then pre-LN
layers with exact GELU and a final LayerNorm (epsilon `layer_norm_eps`,
1e-12). Its `last_hidden_state` is the encoder's output with pool "all"
(CLS, distillation, then the patches) and its `pooler_output`, the mean of
the CLS and distillation outputs, that of pool "cls".

The encoder config the checkpoint fixes computes the features inside the
model from 16 kHz waveforms: `frontend={"features": "ast_fbank",
"max_length": ..., "num_mel_bins": ...}` (`kaldi_fbank.ast_features`, which
matches `ASTFeatureExtractor` with its default AudioSet normalisation, mean
-4.2677393 and std 4.5689974). Checkpoints fine-tuned with other statistics
(their `preprocessor_config.json`, which this family does not read) need
them in the frontend; `input_features=True` instead takes precomputed
`input_values` `[batch, max_length, num_mel_bins]`, in Hugging Face's layout.

The position table is not resized: features must have the checkpoint's
`max_length` frames and `num_mel_bins` bins (else the position embedding's
shape differs, and loading names it).
"""

from typing import Any, Dict, Mapping

import numpy as np

from mmjax.pretrained.families import FAMILIES, Family
from mmjax.pretrained import vit
from mmjax.pretrained.vit import hf_activation
from mmjax.pretrained.weight_map import (WeightSource, conv2d, detect_prefix,
                                         layer_norm, transformer_layer)

# `transformers.ASTConfig` defaults (MIT/ast-finetuned-audioset-10-10-0.4593).
AST_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12,
                "num_attention_heads": 12, "intermediate_size": 3072,
                "hidden_act": "gelu", "layer_norm_eps": 1e-12,
                "patch_size": 16, "qkv_bias": True, "frequency_stride": 10,
                "time_stride": 10, "max_length": 1024, "num_mel_bins": 128}


def _get(hf_config: Mapping[str, Any], key: str) -> Any:
  return hf_config.get(key, AST_DEFAULTS[key])


@FAMILIES.register("ast")
class ASTFamily(Family):
  """`ASTModel` / `ASTForAudioClassification` checkpoints.

  Weight names (after the prefix "" or "audio_spectrogram_transformer."):
  `embeddings.{cls_token, distillation_token, position_embeddings,
  patch_embeddings.projection}`, `encoder.layer.{i}.{layernorm_before,
  attention.attention.{query, key, value}, attention.output.dense,
  layernorm_after, intermediate.dense, output.dense}`, `layernorm` (the
  names `save_pretrained` writes and the hub checkpoints have). The
  classifier (`classifier.{layernorm, dense}`) is ignored. Without
  `qkv_bias` the query/key/value biases are zeros, which is exact.
  """
  model_types = ("audio-spectrogram-transformer",)
  encoder = "spectrogram_transformer"
  ignore_prefixes = ("classifier.",)

  def encoder_attributes(self, hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    """Raises: ValueError naming `patch_size` when it is not one int (the
    Hugging Face model's Conv2d needs a square patch), or an unsupported
    `hidden_act`."""
    patch = _get(hf_config, "patch_size")
    if isinstance(patch, (list, tuple)):
      raise ValueError(f"patch_size={patch!r}: ASTModel takes one int (square "
                       f"patches)")
    return {
        "hidden_dim": int(_get(hf_config, "hidden_size")),
        "num_layers": int(_get(hf_config, "num_hidden_layers")),
        "num_heads": int(_get(hf_config, "num_attention_heads")),
        "mlp_dim": int(_get(hf_config, "intermediate_size")),
        # mmjax's patch sizes and strides are (time, freq).
        "patch_size": (int(patch), int(patch)),
        "patch_stride": (int(_get(hf_config, "time_stride")),
                         int(_get(hf_config, "frequency_stride"))),
        "patch_order": "frequency_major",
        "distillation_token": True,
        "positional_embedding": "learned",
        "layer_norm_epsilon": float(_get(hf_config, "layer_norm_eps")),
        "activation": hf_activation(hf_config, AST_DEFAULTS["hidden_act"]),
        "frontend": {"features": "ast_fbank",
                     "max_length": int(_get(hf_config, "max_length")),
                     "num_mel_bins": int(_get(hf_config, "num_mel_bins"))},
    }

  def weight_prefix(self, weights: Mapping[str, np.ndarray]) -> str:
    return detect_prefix(weights, "embeddings.cls_token",
                         ("", "audio_spectrogram_transformer.")) or ""

  def map_weights(self, source: WeightSource,
                  hf_config: Mapping[str, Any]) -> Dict[str, Any]:
    num_heads = int(_get(hf_config, "num_attention_heads"))
    qkv_bias = bool(_get(hf_config, "qkv_bias"))
    patch = "embeddings.patch_embeddings.projection"
    without_bias = () if qkv_bias else ("query", "key", "value")
    encoder = {f"layer_{i}": transformer_layer(
        source, f"encoder.layer.{i}.", vit.LAYER, num_heads, without_bias)
               for i in range(int(_get(hf_config, "num_hidden_layers")))}
    encoder["final_norm"] = layer_norm(source, "layernorm")
    return {"transformer": {
        # Conv2d [out, 1, freq, time] -> [freq, time, 1, out]: the encoder's
        # frequency-major grid has frequency rows, as Hugging Face's.
        "patch_embedding": {"kernel": conv2d(source.take(f"{patch}.weight")),
                            "bias": source.take(f"{patch}.bias")},
        "cls": source.take("embeddings.cls_token"),
        "distillation": source.take("embeddings.distillation_token"),
        "position": {
            "embedding": source.take("embeddings.position_embeddings")},
        "encoder": encoder,
    }}
