"""Whisper's audio encoder (Radford et al. 2022, "Robust Speech Recognition
via Large-Scale Weak Supervision"), trainable from scratch or loaded from a
Hugging Face checkpoint (`mmjax.pretrained.whisper`)."""

from typing import Any, ClassVar, Dict, Literal, Tuple, get_args

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.layers import whisper_features
from mmjax.models.layers.attention import TransformerEncoder
from mmjax.models.registries import ENCODERS

Pool = Literal["none", "mean"]
POOLS = get_args(Pool)


def _sinusoids(key, shape, dtype=jnp.float32):
  """Whisper's positions `[length, dim]`: sines then cosines, timescales
  geometric from 1 to 10000 (`sinusoids` in openai-whisper and
  transformers).

  Raises:
    ValueError: for an odd dim.
  """
  del key
  length, dim = shape
  if dim % 2:
    raise ValueError(f"whisper_encoder: hidden_dim must be even for the "
                     f"sinusoidal positions, got {dim}")
  half = dim // 2
  inv_timescales = np.exp(-np.log(10_000.0) / max(half - 1, 1) *
                          np.arange(half))
  angles = np.arange(length)[:, None] * inv_timescales[None, :]
  return jnp.asarray(np.concatenate([np.sin(angles), np.cos(angles)], axis=1),
                     dtype)


@ENCODERS.register("whisper_encoder")
class WhisperEncoder(nn.Module):
  """Whisper's encoder: log-mel -> 2 convolutions -> pre-LN Transformer.

  The log-mel front end (`mmjax.models.layers.whisper_features`) runs inside
  the model. Its features go through a Conv1D (kernel 3, padding 1) + exact
  GELU and a Conv1D (kernel 3, stride 2, padding 1) + GELU, which halves the
  frame rate (10 ms frames -> 20 ms tokens); the positional embedding
  `embed_positions` `[max_source_positions, hidden_dim]` is added (a
  parameter initialised with Whisper's sinusoids; Whisper keeps it frozen,
  here it trains unless the encoder is frozen); then pre-LayerNorm
  Transformer layers (exact GELU, LayerNorm epsilon 1e-5) and a final
  LayerNorm. Whisper's key projection has no bias; mmjax's has one, which a
  checkpoint loads as zeros (a per-query constant that softmax ignores).

  Input length. Whisper sees exactly a `2 * max_source_positions`-frame
  window (30 s for the published models, 1500 positions). With
  `pad_or_trim` (the default), every waveform is zero-padded or truncated
  to that window, `2 * max_source_positions * 160` samples, as the
  Hugging Face feature extractor and openai-whisper do, so every position
  is used. Without it, and for features fed directly, shorter inputs are
  accepted: T frames give ceil(T / 2) tokens, which take the first
  ceil(T / 2) positions; longer inputs raise a ValueError.

  Sample rate. Whisper's front end is fixed at 16 kHz (25 ms windows, 10 ms
  hop, mel bands up to 8 kHz). A waveform at another rate is read as if it
  were 16 kHz: 8 kHz audio (av_digits) plays at double speed, half as long,
  with every frequency doubled. That is harmless for a model trained from
  scratch; a pretrained checkpoint needs 16 kHz audio (resample it in the
  input pipeline).

  Attributes:
    n_mels: mel bins of the features (80; 128 for Whisper large-v3).
    hidden_dim: token width (Whisper `d_model`).
    num_layers: Transformer layers.
    num_heads: attention heads (must divide hidden_dim).
    mlp_dim: MLP hidden width (Whisper `encoder_ffn_dim`).
    max_source_positions: positions, i.e. the most tokens; the window is
      2 * max_source_positions frames of 10 ms.
    dropout_rate: dropout after the positions and inside the Transformer
      (training only).
    pool: "none" (every token: a Hugging Face `last_hidden_state`) or
      "mean" (one token, the mean over time).
    pad_or_trim: pad or truncate waveforms to the full window (see above).
    input_features: `__call__` takes precomputed log-mel features
      `[batch, frames, n_mels]` (e.g. `WhisperFeatureExtractor`'s
      `input_features` transposed) instead of waveforms; `pad_or_trim` then
      does not apply.
    attention_implementation: "auto", "xla" or "cudnn": the attention
      kernel (`mmjax.models.layers.attention_implementation`).
    remat: "none", "full" or "dots": rematerialisation of each Transformer
      layer (`mmjax.models.layers.remat`); parameters are unchanged.
  """
  modality: ClassVar[str] = "audio"
  n_mels: int = 80
  hidden_dim: int = 128
  num_layers: int = 4
  num_heads: int = 4
  mlp_dim: int = 512
  max_source_positions: int = 1500
  dropout_rate: float = 0.0
  pool: Pool = "none"
  pad_or_trim: bool = True
  input_features: bool = False
  attention_implementation: str = "auto"
  remat: str = "none"

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"n_mels": 16, "hidden_dim": 32, "num_layers": 1, "num_heads": 2,
            "mlp_dim": 64, "max_source_positions": 10}

  def features(self, waveform: jnp.ndarray) -> jnp.ndarray:
    """Whisper's log-mel features of the waveforms, as this encoder computes
    them: `[batch, samples]` float at 16 kHz -> float32 `[batch, frames,
    n_mels]` (frames = 2 * max_source_positions with `pad_or_trim`, else
    samples // 160).

    Raises:
      ValueError: see `whisper_features.whisper_log_mel`.
    """
    n_samples = (2 * self.max_source_positions * whisper_features.HOP_LENGTH
                 if self.pad_or_trim else None)
    return whisper_features.whisper_log_mel(waveform, self.n_mels, n_samples)

  @nn.compact
  def __call__(self, inputs: jnp.ndarray, *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes waveforms (or, with `input_features`, log-mel features).

    Args:
      inputs: float32 `[batch, samples]` waveforms in [-1, 1] at 16 kHz; with
        `input_features`, float `[batch, frames, n_mels]` log-mel features.
      train: enables dropout.

    Returns:
      (tokens float32 `[batch, ceil(frames / 2), hidden_dim]` for pool
      "none" (max_source_positions tokens with `pad_or_trim`), `[batch, 1,
      hidden_dim]` for "mean"; token mask bool `[batch, tokens]`, all True:
      Whisper attends to every frame, silence included).

    Raises:
      ValueError: for an unknown `pool`; inputs of the wrong rank, or
        features whose last axis is not n_mels; more than
        2 * max_source_positions frames; a waveform too short for one frame.
    """
    if self.pool not in POOLS:
      raise ValueError(f"whisper_encoder: pool must be one of {POOLS}, got "
                       f"{self.pool!r}")
    if self.input_features:
      if inputs.ndim != 3 or inputs.shape[-1] != self.n_mels:
        raise ValueError(
            f"whisper_encoder with input_features=True expects features "
            f"[batch, frames, n_mels={self.n_mels}], got shape "
            f"{tuple(inputs.shape)}")
      x = inputs.astype(jnp.float32)
    else:
      x = self.features(inputs)
    frames = x.shape[1]
    if frames > 2 * self.max_source_positions:
      raise ValueError(
          f"whisper_encoder: {frames} feature frames exceed the window of "
          f"2 * max_source_positions = {2 * self.max_source_positions} frames "
          f"(max_source_positions={self.max_source_positions}); pad_or_trim "
          f"the waveform or raise max_source_positions")
    x = nn.gelu(nn.Conv(self.hidden_dim, (3,), padding=((1, 1),),
                        name="conv1")(x), approximate=False)
    x = nn.gelu(nn.Conv(self.hidden_dim, (3,), strides=(2,),
                        padding=((1, 1),), name="conv2")(x),
                approximate=False)
    positions = self.param("embed_positions", _sinusoids,
                           (self.max_source_positions, self.hidden_dim))
    x = x + positions[None, :x.shape[1]]
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    # Every token is valid: no key mask (the fastest form for cuDNN).
    x = TransformerEncoder(
        num_layers=self.num_layers, num_heads=self.num_heads,
        mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate, norm_first=True,
        layer_norm_epsilon=1e-5, activation="gelu", final_norm=True,
        attention_implementation=self.attention_implementation,
        remat=self.remat,
        name="encoder")(x, train=train)
    if self.pool == "mean":
      x = x.mean(axis=1, keepdims=True)
    return x, jnp.ones(x.shape[:2], bool)
