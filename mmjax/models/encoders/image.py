"""Image encoders: `[batch, height, width, channels]` -> tokens `[batch, tokens, dim]`
and a token mask `[batch, tokens]`."""

from typing import Any, ClassVar, Dict, Literal, Sequence, Tuple, get_args

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.layers.attention import Activation, PositionalEmbedding
from mmjax.models.layers.conv import Conv, GroupNorm
from mmjax.models.layers.conv_block import ConvBlock
from mmjax.models.layers.patch_transformer import PatchTransformer, Pool, Pooler
from mmjax.models.layers.remat import remat_module
from mmjax.models.registries import ENCODERS

Norm = Literal["group", "batch"]
NORMS = get_args(Norm)


def _check_images(images: jnp.ndarray) -> None:
  if images.ndim != 4:
    raise ValueError(
        f"image encoder expects [batch, height, width, channels], got shape "
        f"{images.shape}")


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

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"features": (8, 16), "embed_dim": 16}

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
    _check_images(images)
    x = images
    for width in self.features:
      x = ConvBlock(width)(x)
    x = nn.Dense(self.embed_dim)(x)
    tokens = x.reshape(x.shape[0], -1, self.embed_dim)
    return tokens, jnp.ones(tokens.shape[:2], bool)


def _norm(kind: str, num_groups: int, features: int, train: bool,
          name: str) -> nn.Module:
  """GroupNorm (`min(num_groups, features)` groups) or BatchNorm."""
  if kind == "group":
    return GroupNorm(num_groups=min(num_groups, features), name=name)
  if kind == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
  raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ResidualBlock(nn.Module):
  """Basic residual block (He et al. 2016): two 3x3 convs and a shortcut.

  The stride sits in the first 3x3 conv, as in the paper's basic block; the
  shortcut is a 1x1 conv + norm when the shape changes (the paper's option
  B), the identity otherwise.

  Attributes:
    features: output channels.
    strides: stride of the first conv and of the projection shortcut.
    norm: "group" or "batch".
    num_groups: GroupNorm groups (capped at `features`).
  """
  features: int
  strides: int = 1
  norm: Norm = "group"
  num_groups: int = 8

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    """`[batch, h, w, c]` -> `[batch, ceil(h / strides), ceil(w / strides),
    features]`. `train` may be given by position (argument 2), so that
    `nn.remat` can treat it as static."""
    norm = lambda name: _norm(self.norm, self.num_groups, self.features,
                              train, name)
    strides = (self.strides, self.strides)
    y = Conv(self.features, (3, 3), strides, use_bias=False,
                name="conv1")(x)
    y = nn.relu(norm("norm1")(y))
    y = Conv(self.features, (3, 3), use_bias=False, name="conv2")(y)
    y = norm("norm2")(y)
    if x.shape != y.shape:
      x = Conv(self.features, (1, 1), strides, use_bias=False,
                  name="projection")(x)
      x = norm("projection_norm")(x)
    return nn.relu(x + y)


@ENCODERS.register("resnet")
class ResNet(nn.Module):
  """A small ResNet (He et al. 2016, "Deep Residual Learning for Image
  Recognition") whose final feature map is returned as tokens.

  The stem is one 3x3 conv with stride 1 and no max-pool, which suits small
  images such as MNIST 28x28. Stage i has `stage_sizes[i]` basic residual
  blocks with `width * 2**i` channels; every stage after the first halves
  height and width. A Dense projects every spatial position to `embed_dim`.

  The defaults are the layout of the paper's CIFAR-10 networks (Sec. 4.2: a
  3x3 stem, three stages of 16, 32 and 64 channels), with these departures:
  GroupNorm instead of BatchNorm by default (norm="batch" restores it);
  1x1 projection shortcuts where the shape changes, where the CIFAR
  networks pad the identity with zeros (option A); and no global average
  pooling or classifier: the final feature map, projected by a Dense, is
  the output.

  With norm="batch", BatchNorm statistics live in the "batch_stats"
  collection: apply with `train=True, mutable=["batch_stats"]` to use and
  update them (momentum 0.9), `train=False` to use the running averages.

  Attributes:
    stage_sizes: residual blocks per stage.
    width: channels of the first stage (doubled at every stage).
    norm: "group" (GroupNorm, no batch statistics) or "batch" (BatchNorm).
    num_groups: GroupNorm groups (capped at the channel count).
    embed_dim: token width.
    remat: "none", "full" or "dots": rematerialisation of each residual
      block (`mmjax.models.layers.remat`; "dots" keeps only `dot_general`
      results, so here it recomputes the convolutions as "full" does);
      parameters and batch statistics are unchanged.
  """
  modality: ClassVar[str] = "image"
  stage_sizes: Sequence[int] = (2, 2, 2)
  width: int = 16
  norm: Norm = "group"
  num_groups: int = 8
  embed_dim: int = 128
  remat: str = "none"

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"stage_sizes": (1, 1), "width": 8, "embed_dim": 16}

  @nn.compact
  def __call__(self, images: jnp.ndarray, *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes images.

    Args:
      images: float32 `[batch, height, width, channels]`, e.g. MNIST
        `[batch, 28, 28, 1]` in [0, 1].
      train: BatchNorm uses (and, when "batch_stats" is mutable, updates)
        batch statistics if True, running averages if False.

    Returns:
      (tokens float32 `[batch, h * w, embed_dim]`, with h = ceil(height /
      2**(S - 1)), w likewise, S = len(stage_sizes); token mask bool
      `[batch, tokens]`, all True).

    Raises:
      ValueError: if `images` is not rank 4 or `norm` is unknown.
    """
    _check_images(images)
    if self.norm not in NORMS:
      raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
    x = Conv(self.width, (3, 3), use_bias=False, name="stem")(images)
    x = nn.relu(_norm(self.norm, self.num_groups, self.width, train,
                      "stem_norm")(x))
    block = remat_module(ResidualBlock, self.remat, static_argnums=(2,))
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = block(self.width * 2**i, strides=2 if i > 0 and j == 0 else 1,
                  norm=self.norm, num_groups=self.num_groups,
                  name=f"stage{i}_block{j}")(x, train)
    x = nn.Dense(self.embed_dim)(x)
    tokens = x.reshape(x.shape[0], -1, self.embed_dim)
    return tokens, jnp.ones(tokens.shape[:2], bool)


@ENCODERS.register("vit")
class ViT(nn.Module):
  """Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16
  Words: Transformers for Image Recognition at Scale").

  Non-overlapping `patch_size` patches, linearly embedded, plus positional
  embeddings, through a pre-LN Transformer (`PatchTransformer`). Departures
  from the paper: no dropout on the embedded patches (ViT drops out after
  adding the positions; here dropout is inside the layers only), and the
  default pool "none" returns the patch tokens without a CLS token (the
  paper classifies from the CLS output; pool "cls" gives it). The
  defaults are mmjax's own ViT; the other settings reproduce published
  towers whose weights `mmjax.pretrained` loads: Hugging Face ViT (exact
  GELU, epsilon 1e-12, pooler "dense_tanh") and CLIP's vision tower
  (Radford et al. 2021: no patch bias, `pre_norm`, no final norm, quick
  GELU, epsilon 1e-5, pooler "layer_norm").

  Attributes:
    hidden_dim: token width.
    num_layers: Transformer layers.
    num_heads: attention heads (must divide hidden_dim).
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the Transformer (training only).
    patch_size: (height, width) of a patch in pixels.
    pool: "none" (all patch tokens), "cls" (only a prepended CLS token's
      output, through `pooler`), "mean" (mean of the patch tokens) or "all"
      (the CLS token then the patch tokens, as a Hugging Face
      `last_hidden_state`).
    positional_embedding: "learned" or "sinusoidal" ("time" is "learned"
      here: patches have no times).
    layer_norm_epsilon: epsilon of every LayerNorm.
    activation: MLP nonlinearity ("gelu_tanh", "gelu", "quick_gelu",
      "relu").
    patch_bias: the patch embedding has a bias (CLIP's has none).
    pre_norm: a LayerNorm on the embedded tokens before the encoder (CLIP's
      `pre_layrnorm`).
    final_norm: the encoder ends with a LayerNorm (CLIP's does not).
    pooler: on the CLS output for pool "cls": "none", "dense_tanh" (Dense +
      tanh, the ViT pooler) or "layer_norm" (CLIP's `post_layernorm`).
    attention_implementation: "auto", "xla" or "cudnn": the attention
      kernel (`mmjax.models.layers.attention_implementation`).
    remat: "none", "full" or "dots": rematerialisation of each Transformer
      layer (`mmjax.models.layers.remat`); parameters are unchanged.
  """
  modality: ClassVar[str] = "image"
  hidden_dim: int = 128
  num_layers: int = 4
  num_heads: int = 4
  mlp_dim: int = 256
  dropout_rate: float = 0.0
  patch_size: Tuple[int, int] = (4, 4)
  pool: Pool = "none"
  positional_embedding: PositionalEmbedding = "learned"
  layer_norm_epsilon: float = 1e-6
  activation: Activation = "gelu_tanh"
  patch_bias: bool = True
  pre_norm: bool = False
  final_norm: bool = True
  pooler: Pooler = "none"
  attention_implementation: str = "auto"
  remat: str = "none"

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"hidden_dim": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64,
            "patch_size": (7, 7)}

  @nn.compact
  def __call__(self, images: jnp.ndarray, *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes images.

    Args:
      images: float32 `[batch, height, width, channels]`.
      train: enables dropout.

    Returns:
      (tokens float32 `[batch, (height / ph) * (width / pw), hidden_dim]`
      for pool "none", `[batch, 1, hidden_dim]` for "cls" and "mean",
      `[batch, 1 + (height / ph) * (width / pw), hidden_dim]` for "all"
      (CLS first, then the patches in row-major order); token mask bool
      `[batch, tokens]`, all True).

    Raises:
      ValueError: if `images` is not rank 4, height or width is not
        divisible by `patch_size`, or `pool`, `pooler` or `activation` is
        unknown.
    """
    _check_images(images)
    patch = tuple(self.patch_size)
    size = images.shape[1:3]
    if size[0] % patch[0] or size[1] % patch[1]:
      raise ValueError(f"vit: image size {size[0]}x{size[1]} is not divisible "
                       f"by patch_size={patch}")
    tokens = PatchTransformer(
        patch_size=patch, hidden_dim=self.hidden_dim,
        num_layers=self.num_layers, num_heads=self.num_heads,
        mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate, pool=self.pool,
        positional_embedding=self.positional_embedding,
        patch_bias=self.patch_bias, pre_norm=self.pre_norm,
        final_norm=self.final_norm, pooler=self.pooler,
        layer_norm_epsilon=self.layer_norm_epsilon,
        activation=self.activation,
        attention_implementation=self.attention_implementation,
        remat=self.remat,
        name="transformer")(images, train=train)
    return tokens, jnp.ones(tokens.shape[:2], bool)
