"""Audio encoders: waveform `[batch, samples]` -> tokens `[batch, tokens, dim]`
and a token mask `[batch, tokens]`."""

from typing import Any, ClassVar, Mapping, Optional, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.encoders.image import ConvBlock
from mmjax.models.layers.audio_frontend import AudioFrontEnd
from mmjax.models.layers.patch_transformer import PatchTransformer
from mmjax.models.layers.spec_augment import spec_augment
from mmjax.models.registries import ENCODERS


class SpectrogramEncoder(nn.Module):
  """Base of the spectrogram encoders: front end, standardisation, SpecAugment.

  The front end (`mmjax.models.layers.audio_frontend`) runs inside the model,
  so features are computed on the accelerator in the jitted step. Each
  example's features are standardised (zero mean, unit variance over time and
  frequency), which removes recording loudness. In training, SpecAugment
  (Park et al. 2019) then masks `freq_masks` frequency bands of up to
  `freq_mask_width` bins and `time_masks` spans of up to `time_mask_width`
  frames per example, with 0 (the mean), drawing from the "augment" rng
  stream.

  Attributes:
    frontend: keyword arguments of `AudioFrontEnd` (features "log_mel" or
      "mfcc", sample_rate in Hz, n_fft and hop_length in samples, n_mels,
      fmin/fmax in Hz, n_mfcc, top_db).
    freq_masks: SpecAugment frequency masks per example (0: none).
    freq_mask_width: maximum frequency mask width in bins.
    time_masks: SpecAugment time masks per example (0: none).
    time_mask_width: maximum time mask width in frames.
  """
  modality: ClassVar[str] = "audio"
  frontend: Optional[Mapping[str, Any]] = None
  freq_masks: int = 0
  freq_mask_width: int = 8
  time_masks: int = 0
  time_mask_width: int = 10

  def spectrogram(self, waveform: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Standardised (and, in training, masked) features.

    Call from the subclass's compact `__call__`.

    Args:
      waveform: float32 `[batch, samples]` in [-1, 1] at the front end's
        sample rate.
      train: applies SpecAugment (when a mask count is > 0), which needs an
        "augment" rng (`apply(..., rngs={"augment": key})`).

    Returns:
      `[batch, frames, n_features]` in the waveform's dtype (the front end
      and the standardisation compute in float32), frames = 1 + samples //
      hop_length (even n_fft), n_features = n_mels (log_mel) or n_mfcc.
    """
    spec = AudioFrontEnd(**dict(self.frontend or {}))(waveform)
    mean = spec.mean(axis=(1, 2), keepdims=True)
    std = spec.std(axis=(1, 2), keepdims=True)
    spec = ((spec - mean) / (std + 1e-5)).astype(waveform.dtype)
    if train and (self.freq_masks > 0 or self.time_masks > 0):
      spec = spec_augment(
          self.make_rng("augment"), spec, num_freq_masks=self.freq_masks,
          max_freq_width=self.freq_mask_width, num_time_masks=self.time_masks,
          max_time_width=self.time_mask_width)
    return spec


@ENCODERS.register("spectrogram_cnn")
class SpectrogramCNN(SpectrogramEncoder):
  """Log-mel (or MFCC) front end + 2-D CNN over [time, freq]; one token per frame.

  Features come from `SpectrogramEncoder.spectrogram` (standardised, with
  SpecAugment in training). After the conv blocks the frequency axis is
  folded into channels and projected to `embed_dim`.

  Attributes:
    frontend, freq_masks, freq_mask_width, time_masks, time_mask_width: see
      `SpectrogramEncoder`.
    features: channels of each conv block (each halves time and frequency).
    embed_dim: token width.
  """
  features: Sequence[int] = (32, 64, 128)
  embed_dim: int = 128

  @nn.compact
  def __call__(self, waveform: jnp.ndarray, *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes waveforms.

    Args:
      waveform: float32 `[batch, samples]` in [-1, 1] at the front end's
        sample rate.
      train: applies SpecAugment when a mask count is > 0 (needs an
        "augment" rng).

    Returns:
      (tokens float32 `[batch, frames / 2**L, embed_dim]`, with frames =
      1 + samples // hop_length and L = len(features); token mask bool
      `[batch, tokens]`, all True: waveforms are padded or cropped to one
      length in the input pipeline).
    """
    x = self.spectrogram(waveform, train=train)[..., None]
    for width in self.features:
      x = ConvBlock(width)(x)
    x = x.reshape(x.shape[0], x.shape[1], -1)
    tokens = nn.Dense(self.embed_dim)(x)
    return tokens, jnp.ones(tokens.shape[:2], bool)


@ENCODERS.register("spectrogram_transformer")
class SpectrogramTransformer(SpectrogramEncoder):
  """Audio Spectrogram Transformer (Gong et al. 2021, "AST: Audio Spectrogram
  Transformer"), trained from scratch.

  Features come from `SpectrogramEncoder.spectrogram` (standardised, with
  SpecAugment in training). The [time, freq] plane is cut into
  non-overlapping `patch_size` patches (AST's 16x16 patches with stride 10
  overlap; non-overlapping ones are ViT's and cost far fewer tokens), which
  `PatchTransformer` embeds and encodes. The time axis is zero-padded (0 is
  the standardised mean) up to a multiple of the time patch, so no frame is
  dropped.

  Attributes:
    frontend, freq_masks, freq_mask_width, time_masks, time_mask_width: see
      `SpectrogramEncoder`.
    hidden_dim: token width.
    num_layers: Transformer layers.
    num_heads: attention heads (must divide hidden_dim).
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the Transformer (training only).
    patch_size: (frames, frequency bins) of a patch.
    pool: "none" (all patch tokens), "cls" (only a prepended CLS token's
      output) or "mean" (mean of the patch tokens).
    positional_embedding: "learned" or "sinusoidal".
  """
  hidden_dim: int = 128
  num_layers: int = 4
  num_heads: int = 4
  mlp_dim: int = 256
  dropout_rate: float = 0.0
  patch_size: Tuple[int, int] = (8, 8)
  pool: str = "none"
  positional_embedding: str = "learned"

  @nn.compact
  def __call__(self, waveform: jnp.ndarray, *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes waveforms.

    Args:
      waveform: float32 `[batch, samples]` in [-1, 1] at the front end's
        sample rate.
      train: applies SpecAugment when a mask count is > 0 (needs an
        "augment" rng) and enables dropout.

    Returns:
      (tokens float32 `[batch, ceil(frames / pt) * (n_features / pf),
      hidden_dim]` for pool "none", `[batch, 1, hidden_dim]` for "cls" and
      "mean", with frames = 1 + samples // hop_length, (pt, pf) =
      patch_size and n_features = n_mels (or n_mfcc); token mask bool
      `[batch, tokens]`, all True: every patch holds at least one frame).

    Raises:
      ValueError: if the feature count (n_mels, or n_mfcc) is not divisible
        by the frequency patch size, or `pool` is unknown.
    """
    patch = tuple(self.patch_size)
    spec = self.spectrogram(waveform, train=train)
    frames, bins = spec.shape[1:]
    if bins % patch[1]:
      features = dict(self.frontend or {}).get("features",
                                               AudioFrontEnd.features)
      name = "n_mfcc" if features == "mfcc" else "n_mels"
      raise ValueError(
          f"spectrogram_transformer: {name}={bins} is not divisible by the "
          f"frequency patch size {patch[1]} (patch_size={patch}, in (time, "
          f"freq))")
    spec = jnp.pad(spec, ((0, 0), (0, -frames % patch[0]), (0, 0)))
    tokens = PatchTransformer(
        patch_size=patch, hidden_dim=self.hidden_dim,
        num_layers=self.num_layers, num_heads=self.num_heads,
        mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate, pool=self.pool,
        positional_embedding=self.positional_embedding,
        name="transformer")(spec[..., None], train=train)
    return tokens, jnp.ones(tokens.shape[:2], bool)
