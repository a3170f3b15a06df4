"""Image encoders: `[batch, height, width, channels]` -> tokens `[batch, tokens, dim]`
and a token mask `[batch, tokens]`."""

from typing import ClassVar, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.registries import ENCODERS


class ConvBlock(nn.Module):
  """3x3 conv -> GroupNorm -> GELU -> 2x2 max-pool (stride 2)."""
  features: int
  num_groups: int = 8

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """`[batch, h, w, c]` -> `[batch, h // 2, w // 2, features]`."""
    x = nn.Conv(self.features, (3, 3), use_bias=False)(x)
    x = nn.GroupNorm(num_groups=min(self.num_groups, self.features))(x)
    x = nn.gelu(x)
    return nn.max_pool(x, (2, 2), strides=(2, 2))


@ENCODERS.register("cnn")
class CNN(nn.Module):
  """A VGG-style CNN whose final feature map is returned as tokens.

  Each of `features` is one `ConvBlock` (halving height and width); a Dense
  projects every spatial position to `embed_dim`. GroupNorm rather than
  BatchNorm keeps the model free of cross-device batch statistics.

  Attributes:
    features: channels of each conv block, e.g. (32, 64, 128).
    embed_dim: token width.
  """
  modality: ClassVar[str] = "image"
  features: Sequence[int] = (32, 64, 128)
  embed_dim: int = 128

  @nn.compact
  def __call__(self, images: jnp.ndarray, *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes images.

    Args:
      images: float32 `[batch, height, width, channels]`, e.g. MNIST
        `[batch, 28, 28, 1]` in [0, 1].
      train: unused (no dropout or batch statistics); kept for a uniform
        encoder interface.

    Returns:
      (tokens float32 `[batch, (height / 2**L) * (width / 2**L), embed_dim]`,
      with L = len(features) and floor division at each block; token mask
      bool `[batch, tokens]`, all True).

    Raises:
      ValueError: if `images` is not rank 4.
    """
    del train
    if images.ndim != 4:
      raise ValueError(
          f"image encoder expects [batch, height, width, channels], got shape "
          f"{images.shape}")
    x = images
    for width in self.features:
      x = ConvBlock(width)(x)
    x = nn.Dense(self.embed_dim)(x)
    tokens = x.reshape(x.shape[0], -1, self.embed_dim)
    return tokens, jnp.ones(tokens.shape[:2], bool)
