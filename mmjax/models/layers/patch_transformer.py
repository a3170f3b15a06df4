"""Patch embedding -> (CLS) -> positions -> Transformer -> pooling.

The trunk shared by the ViT image encoder (Dosovitskiy et al. 2021, "An Image
is Worth 16x16 Words"), the Audio Spectrogram Transformer (Gong et al.
2021, "AST: Audio Spectrogram Transformer"; a distillation token and
overlapping patches as in DeiT, Touvron et al. 2021) and CLIP's vision tower
(Radford et al. 2021: no patch bias, a LayerNorm before the encoder, the
pooled CLS token LayerNormed), which differ only in the grid they cut into
patches and in these details.
"""

from typing import Literal, Optional, Sequence, get_args

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.layers.attention import (Activation, AddPositionalEmbedding,
                                           PositionalEmbedding,
                                           TransformerEncoder)

Pool = Literal["none", "cls", "mean", "all"]
POOLS = get_args(Pool)
Pooler = Literal["none", "dense_tanh", "layer_norm"]
POOLERS = get_args(Pooler)


class PatchTransformer(nn.Module):
  """Patches of a 2-D grid, encoded by a Transformer.

  Patches are embedded by a Conv with kernel `patch_size` and stride
  `patch_stride` (a linear map of each flattened patch, as in ViT), in
  row-major order over the grid; positional embeddings are added to every
  token (CLS and distillation tokens included).

  Attributes:
    patch_size: (rows, columns) of a patch.
    hidden_dim: token width D.
    num_layers: Transformer layers.
    num_heads: attention heads (must divide hidden_dim).
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the Transformer (training only).
    pool: "none" (every patch token), "cls" (a learned CLS token is
      prepended and only its output is returned, through `pooler`), "mean"
      (mean of the patch tokens) or "all" (CLS, distillation token if any,
      then the patch tokens: a Hugging Face `last_hidden_state`).
    positional_embedding: "learned" or "sinusoidal" (`AddPositionalEmbedding`;
      "time" is "learned" here: patches have no times).
    patch_stride: stride of the patch embedding; None: `patch_size`
      (non-overlapping). AST uses 16x16 patches with stride 10.
    patch_bias: the patch embedding has a bias (not in CLIP).
    distillation_token: prepend a second learned token after CLS (AST,
      DeiT); pool "cls" then returns the mean of the two.
    pre_norm: a LayerNorm (`pre_norm`) on the tokens before the encoder
      (CLIP's `pre_layrnorm`).
    final_norm: the encoder ends with a LayerNorm.
    pooler: on the pooled CLS token (pool "cls"): "none", "dense_tanh"
      (`pooler`: Dense + tanh, BERT/ViT) or "layer_norm" (`pooler_norm`,
      CLIP's `post_layernorm`).
    layer_norm_epsilon, activation, attention_implementation, remat: of
      the encoder (`TransformerEncoder`).
  """
  patch_size: Sequence[int] = (4, 4)
  hidden_dim: int = 128
  num_layers: int = 4
  num_heads: int = 4
  mlp_dim: int = 256
  dropout_rate: float = 0.0
  pool: Pool = "none"
  positional_embedding: PositionalEmbedding = "learned"
  patch_stride: Optional[Sequence[int]] = None
  patch_bias: bool = True
  distillation_token: bool = False
  pre_norm: bool = False
  final_norm: bool = True
  pooler: Pooler = "none"
  layer_norm_epsilon: float = 1e-6
  activation: Activation = "gelu_tanh"
  attention_implementation: str = "auto"
  remat: str = "none"

  @nn.compact
  def __call__(self, grid: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Encodes a grid.

    Args:
      grid: float `[batch, rows, columns, channels]`; without `patch_stride`,
        rows and columns must be multiples of `patch_size` (callers check,
        with their own message).
      train: enables dropout.

    Returns:
      float32 `[batch, P, hidden_dim]` for pool "none", with P patches
      (`(rows / pr) * (columns / pc)` when not overlapping);
      `[batch, 1, hidden_dim]` for "cls" and "mean"; `[batch, prefix + P,
      hidden_dim]` for "all".

    Raises:
      ValueError: for an unknown `pool` or `pooler`, a distillation token
        without a CLS token, or a grid that is not a whole number of patches.
    """
    if self.pool not in POOLS:
      raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
    if self.pooler not in POOLERS:
      raise ValueError(f"pooler must be one of {POOLERS}, got {self.pooler!r}")
    with_cls = self.pool in ("cls", "all")
    if self.distillation_token and not with_cls:
      raise ValueError("distillation_token needs pool 'cls' or 'all', got "
                       f"{self.pool!r}")
    patch = tuple(self.patch_size)
    stride = patch if self.patch_stride is None else tuple(self.patch_stride)
    if stride == patch and (grid.shape[1] % patch[0] or grid.shape[2] % patch[1]):
      raise ValueError(f"grid {grid.shape[1:3]} is not a whole number of "
                       f"patches of patch_size={patch}")
    x = nn.Conv(self.hidden_dim, patch, strides=stride, padding="VALID",
                use_bias=self.patch_bias, name="patch_embedding")(grid)
    x = x.reshape(x.shape[0], -1, self.hidden_dim)
    prefix = []
    if with_cls:
      prefix.append(self.param("cls", nn.initializers.zeros,
                               (1, 1, self.hidden_dim), jnp.float32))
    if self.distillation_token:
      prefix.append(self.param("distillation", nn.initializers.zeros,
                               (1, 1, self.hidden_dim), jnp.float32))
    if prefix:
      prefix = [jnp.broadcast_to(p, (x.shape[0], 1, x.shape[2])) for p in prefix]
      x = jnp.concatenate([*prefix, x], axis=1)
    x = AddPositionalEmbedding(self.positional_embedding, name="position")(x)
    if self.pre_norm:
      x = nn.LayerNorm(epsilon=self.layer_norm_epsilon, name="pre_norm")(x)
    x = TransformerEncoder(
        self.num_layers, self.num_heads, self.mlp_dim, self.dropout_rate,
        layer_norm_epsilon=self.layer_norm_epsilon, activation=self.activation,
        final_norm=self.final_norm,
        attention_implementation=self.attention_implementation,
        remat=self.remat, name="encoder")(x, train=train)
    if self.pool == "all":
      return x
    if self.pool == "cls":
      pooled = x[:, :len(prefix)].mean(axis=1, keepdims=True)
      if self.pooler == "dense_tanh":
        pooled = jnp.tanh(nn.Dense(self.hidden_dim, name="pooler")(pooled))
      elif self.pooler == "layer_norm":
        pooled = nn.LayerNorm(epsilon=self.layer_norm_epsilon,
                              name="pooler_norm")(pooled)
      return pooled
    if self.pool == "mean":
      return x.mean(axis=1, keepdims=True)
    return x
