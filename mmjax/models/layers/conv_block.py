"""The conv block of the CNN encoders (image `cnn`, audio `spectrogram_cnn`)."""

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.layers.conv import Conv, GroupNorm, max_pool


class ConvBlock(nn.Module):
  """3x3 conv (no bias) -> GroupNorm -> tanh-approximated GELU -> 2x2
  max-pool (stride 2), VGG style (Simonyan & Zisserman 2015) with GroupNorm
  (Wu & He 2018) in place of BatchNorm.

  Built from the layers of `mmjax.models.layers.conv`, which give
  flax.linen's parameters and results. Parameters: `Conv_0` (`kernel`
  `[3, 3, in, features]`), `GroupNorm_0` (`scale`, `bias` `[features]`).

  Attributes:
    features: output channels.
    num_groups: GroupNorm groups, capped at `features`.
  """
  features: int
  num_groups: int = 8

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """`[batch, h, w, c]` -> `[batch, h // 2, w // 2, features]`, in the
    dtype of `x` and the parameters promoted together.

    Raises:
      ValueError: if `x` is not rank 4, or `min(num_groups, features)` does
        not divide `features`.
    """
    x = Conv(self.features, (3, 3), use_bias=False)(x)
    x = GroupNorm(num_groups=min(self.num_groups, self.features))(x)
    x = nn.gelu(x)
    return max_pool(x, (2, 2))
