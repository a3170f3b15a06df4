"""Audio encoders: waveform `[batch, samples]` -> tokens `[batch, tokens, dim]`
and a token mask `[batch, tokens]`."""

from typing import Any, ClassVar, Mapping, Optional, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.encoders.image import ConvBlock
from mmjax.models.layers.audio_frontend import AudioFrontEnd
from mmjax.models.registries import ENCODERS


@ENCODERS.register("spectrogram_cnn")
class SpectrogramCNN(nn.Module):
  """Log-mel (or MFCC) front end + 2-D CNN over [time, freq]; one token per frame.

  The front end (`mmjax.models.layers.audio_frontend`) runs inside the model,
  so features are computed on the accelerator in the jitted step. Each
  example's features are standardised (zero mean, unit variance over time and
  frequency), which removes recording loudness. After the conv blocks the
  frequency axis is folded into channels and projected to `embed_dim`.

  Attributes:
    frontend: keyword arguments of `AudioFrontEnd` (features "log_mel" or
      "mfcc", sample_rate in Hz, n_fft and hop_length in samples, n_mels,
      fmin/fmax in Hz, n_mfcc, top_db).
    features: channels of each conv block (each halves time and frequency).
    embed_dim: token width.
  """
  modality: ClassVar[str] = "audio"
  frontend: Optional[Mapping[str, Any]] = None
  features: Sequence[int] = (32, 64, 128)
  embed_dim: int = 128

  @nn.compact
  def __call__(self, waveform: jnp.ndarray, *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes waveforms.

    Args:
      waveform: float32 `[batch, samples]` in [-1, 1] at the front end's
        sample rate.
      train: unused; kept for a uniform encoder interface.

    Returns:
      (tokens float32 `[batch, frames / 2**L, embed_dim]`, with frames =
      1 + samples // hop_length and L = len(features); token mask bool
      `[batch, tokens]`, all True: waveforms are padded or cropped to one
      length in the input pipeline).
    """
    del train
    spec = AudioFrontEnd(**dict(self.frontend or {}))(waveform)
    mean = spec.mean(axis=(1, 2), keepdims=True)
    std = spec.std(axis=(1, 2), keepdims=True)
    x = ((spec - mean) / (std + 1e-5))[..., None]
    for width in self.features:
      x = ConvBlock(width)(x)
    x = x.reshape(x.shape[0], x.shape[1], -1)
    tokens = nn.Dense(self.embed_dim)(x)
    return tokens, jnp.ones(tokens.shape[:2], bool)
