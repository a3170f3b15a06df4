"""Multi-head attention, positional embeddings and the pre-LayerNorm Transformer.

Every attention-based encoder and fusion block in mmjax is written with these
layers. Attention goes through `jax.nn.dot_product_attention`, with the
kernel chosen per call by `attention_implementation` (`auto`: cuDNN's fused
kernel on an NVIDIA GPU where its constraints hold, XLA's elsewhere; see
`mmjax.models.layers.attention_implementation`). Layer stacks can
rematerialise their activations (`remat`, `mmjax.models.layers.remat`).

Shapes: B batch, T query tokens, S key/value tokens, D model width,
N heads, H head width.

The defaults are mmjax's own (pre-LayerNorm, tanh-approximated GELU, LayerNorm
epsilon 1e-6). `norm_first`, `activation`, `layer_norm_epsilon` and `causal`
also express the published layers that `mmjax.pretrained` loads weights into:
BERT (post-LayerNorm, exact GELU, 1e-12), ViT/AST (pre-LN, exact GELU, 1e-12),
CLIP (pre-LN, quick GELU, 1e-5, causal text), Whisper (pre-LN, exact GELU,
1e-5).

References: Vaswani et al. 2017, "Attention Is All You Need" (attention,
sinusoidal positions); Xiong et al. 2020, "On Layer Normalization in the
Transformer Architecture" (pre-LayerNorm); Dosovitskiy et al. 2021 (learned
positions, as in ViT); Hendrycks & Gimpel 2016, "Gaussian Error Linear Units"
(GELU; the sigmoid approximation x * sigmoid(1.702 x) is CLIP's quick GELU).
"""

from typing import Literal, Optional, get_args

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmjax.models.layers import attention_implementation as implementations
from mmjax.models.layers.remat import remat_module

Array = jnp.ndarray

# MLP nonlinearities, by name: the keys of `ACTIVATIONS`.
Activation = Literal["gelu_tanh", "gelu", "quick_gelu", "relu"]
ACTIVATIONS = {
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "relu": nn.relu,
}


def activation_fn(name: str):
  """The MLP nonlinearity called `name` (a key of `ACTIVATIONS`).

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if name not in ACTIVATIONS:
    raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                     f"{name!r}")
  return ACTIVATIONS[name]


def attend(query: Array, key: Array, value: Array,
           key_mask: Optional[Array] = None, causal: bool = False,
           implementation: Optional[str] = "auto") -> Array:
  """Softmax attention of every query over the valid keys.

  Args:
    query: float `[B, T, N, H]`.
    key: float `[B, S, N, H]`.
    value: float `[B, S, N, H]`.
    key_mask: bool `[B, S]`, True for keys that may be attended to; None:
      every key (no mask reaches the kernel, the fastest form for cuDNN).
    causal: query t attends only to keys s <= t (needs T == S).
    implementation: "auto" (or None), "xla" or "cudnn"
      (`attention_implementation.choose`, at trace time).

  Returns:
    float `[B, T, N, H]`. A query whose example has no valid key gets zeros
    (rather than an average over masked keys).

  Raises:
    ValueError: for an unknown `implementation`, or "cudnn" where cuDNN's
      constraints fail (backend, dtype, head dim, mask form).
  """
  kernel = implementations.choose(
      implementation, query.shape, key.shape,
      (query.dtype, key.dtype, value.dtype), key_mask is not None)
  if key_mask is None:
    return jax.nn.dot_product_attention(query, key, value, is_causal=causal,
                                        implementation=kernel)
  valid = key_mask[:, :, None, None]
  # Masked keys/values are zeroed so that NaN or inf in them cannot leak
  # through 0-weight products (0 * NaN = NaN).
  key = jnp.where(valid, key, 0.0)
  value = jnp.where(valid, value, 0.0)
  mask = key_mask[:, None, None, :]
  if kernel == "cudnn":  # cuDNN's bias must span [T, S].
    mask = jnp.broadcast_to(mask, (mask.shape[0], 1, query.shape[1],
                                   key.shape[1]))
  out = jax.nn.dot_product_attention(query, key, value, mask=mask,
                                     is_causal=causal, implementation=kernel)
  return jnp.where(key_mask.any(axis=1)[:, None, None, None], out, 0.0)


def attention_weights(query: Array, key: Array,
                      key_mask: Optional[Array] = None,
                      causal: bool = False) -> Array:
  """Explicit softmax attention weights, for analysis (sown, never trained on).

  The same weights as `attend` under every `implementation` (computed here
  with einsums, whichever kernel the layer's output takes).

  Args:
    query: float `[B, T, N, H]`; key: float `[B, S, N, H]`;
    key_mask: bool `[B, S]` or None (every key); causal: as in `attend`.

  Returns:
    float32 `[B, N, T, S]`; rows sum to 1 over valid keys, or are all 0 when
    an example has no valid key.
  """
  logits = jnp.einsum("btnh,bsnh->bnts", query, key) / np.sqrt(query.shape[-1])
  if key_mask is None:
    key_mask = jnp.ones(key.shape[:2], bool)
  mask = key_mask[:, None, None, :]
  if causal:
    t, s = query.shape[1], key.shape[1]
    mask = mask & jnp.tril(jnp.ones((t, s), bool))[None, None]
  logits = jnp.where(mask, logits, -jnp.inf)
  weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1, where=mask)
  return jnp.where(mask, weights, 0.0)


class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention with a key mask (self or cross).

  Parameter names (`query`, `key`, `value`, `out`, each a DenseGeneral) follow
  `flax.linen.MultiHeadDotProductAttention`, so pretrained weights map one to
  one. When the "intermediates" collection is mutable (analysis), the weights
  `[B, N, T, S]` are sown as `attention_weights`; training never computes them.

  Attributes:
    num_heads: N.
    head_dim: H; default D // num_heads.
    out_dim: output width; default the query width D.
    dropout_rate: dropout on the output projection (training only).
    causal: each query attends only to keys at or before its position
      (self-attention of an autoregressive text tower, e.g. CLIP's).
    attention_implementation: "auto" (or None), "xla" or "cudnn" (`attend`).

  Raises:
    ValueError: when `head_dim` is unset and D is not divisible by num_heads;
      for an `attention_implementation` that is unknown or cannot apply.
  """
  num_heads: int
  head_dim: Optional[int] = None
  out_dim: Optional[int] = None
  dropout_rate: float = 0.0
  causal: bool = False
  attention_implementation: Optional[str] = "auto"

  @nn.compact
  def __call__(self, query: Array, key_value: Optional[Array] = None,
               key_mask: Optional[Array] = None, *, train: bool = False) -> Array:
    """Attends from `query` to `key_value`.

    Args:
      query: float `[B, T, D]`.
      key_value: float `[B, S, Dk]`; None for self-attention (`query`).
      key_mask: bool `[B, S]`; None: every key is valid (and no mask reaches
        the attention kernel).
      train: enables dropout.

    Returns:
      float `[B, T, out_dim or D]`.
    """
    key_value = query if key_value is None else key_value
    width = query.shape[-1]
    head_dim = self.head_dim
    if head_dim is None:
      if width % self.num_heads:
        raise ValueError(f"attention width {width} is not divisible by "
                         f"num_heads={self.num_heads}")
      head_dim = width // self.num_heads
    if key_mask is not None:
      key_mask = key_mask.astype(bool)
    dense = lambda name: nn.DenseGeneral((self.num_heads, head_dim), name=name)
    q = dense("query")(query)
    k = dense("key")(key_value)
    v = dense("value")(key_value)
    if self.is_mutable_collection("intermediates"):
      self.sow("intermediates", "attention_weights",
               attention_weights(q, k, key_mask, self.causal))
    out = attend(q, k, v, key_mask, self.causal, self.attention_implementation)
    out = nn.DenseGeneral(self.out_dim or width, axis=(-2, -1), name="out")(out)
    return nn.Dropout(self.dropout_rate, deterministic=not train)(out)


def sinusoidal_positional_embedding(length: int, dim: int,
                                    max_timescale: float = 10_000.0) -> Array:
  """Fixed sin/cos positions (Vaswani et al. 2017): float32 `[length, dim]`.

  Channels `[0, dim/2)` are sines, `[dim/2, dim)` cosines, with timescales
  geometric from 1 to `max_timescale`.

  Raises:
    ValueError: for an odd `dim`.
  """
  if dim % 2:
    raise ValueError(f"sinusoidal positional embedding needs an even dim, got {dim}")
  half = dim // 2
  inv_timescales = max_timescale ** (-np.arange(half) / max(half - 1, 1))
  angles = np.arange(length)[:, None] * inv_timescales[None, :]
  return jnp.asarray(np.concatenate([np.sin(angles), np.cos(angles)], axis=1),
                     jnp.float32)


def time_positional_embedding(times: np.ndarray, dim: int,
                              min_period: float = 0.02,
                              max_period: float = 20.0) -> Array:
  """Sinusoids of time in seconds: float32 `[len(times), dim]`.

  Like `sinusoidal_positional_embedding`, but the angle is `2 pi t / period`
  for a token at `t` seconds, with `dim / 2` periods geometric from
  `min_period` to `max_period` seconds. Two streams sampled at different rates
  (video frames, audio frames) get the same code at the same moment, so
  attention between them can find the same time in the other stream (as the
  time-aligned positions of audio-visual Transformers, e.g. Nagrani et al.
  2021's synchronised patches; the sinusoids are Vaswani et al. 2017's).

  Args:
    times: float `[tokens]` seconds.
    dim: even width.
    min_period, max_period: the shortest and longest period, seconds.

  Raises:
    ValueError: for an odd `dim` or times that are not one-dimensional.
  """
  if dim % 2:
    raise ValueError(f"time positional embedding needs an even dim, got {dim}")
  times = np.asarray(times, np.float64)
  if times.ndim != 1:
    raise ValueError(f"token times must be [tokens] seconds, got shape "
                     f"{times.shape}")
  half = dim // 2
  periods = min_period * (max_period / min_period) ** (
      np.arange(half) / max(half - 1, 1))
  angles = 2 * np.pi * times[:, None] / periods[None, :]
  return jnp.asarray(np.concatenate([np.sin(angles), np.cos(angles)], axis=1),
                     jnp.float32)


PositionalEmbedding = Literal["learned", "sinusoidal", "time"]
POSITIONAL_EMBEDDINGS = get_args(PositionalEmbedding)


class AddPositionalEmbedding(nn.Module):
  """Adds positional embeddings to `[B, T, D]` tokens.

  Attributes:
    kind: "learned" (a `[1, T, D]` parameter, N(0, 0.02) init, as in ViT and
      BERT), "sinusoidal" (fixed, no parameters) or "time"
      (`time_positional_embedding` of the tokens' times in seconds; tokens
      without times, e.g. an image's, get learned positions).

  Raises:
    ValueError: for another `kind`, or times whose length is not T.
  """
  kind: PositionalEmbedding = "learned"

  @nn.compact
  def __call__(self, x: Array, times: Optional[np.ndarray] = None) -> Array:
    """`[B, T, D]` (and for "time" optional float `[T]` seconds) -> `[B, T, D]`."""
    _, length, dim = x.shape
    if self.kind not in POSITIONAL_EMBEDDINGS:
      raise ValueError(f"positional embedding kind must be one of "
                       f"{POSITIONAL_EMBEDDINGS}, got {self.kind!r}")
    if self.kind == "time" and times is not None:
      if len(times) != length:
        raise ValueError(f"{len(times)} token times for {length} tokens")
      pos = time_positional_embedding(times, dim)[None]
    elif self.kind == "sinusoidal":
      pos = sinusoidal_positional_embedding(length, dim)[None]
    else:
      pos = self.param("embedding", nn.initializers.normal(0.02),
                       (1, length, dim), jnp.float32)
    return x + pos.astype(x.dtype)


class MlpBlock(nn.Module):
  """Transformer feed-forward: Dense(mlp_dim) -> activation -> Dense(D),
  dropout. `activation` names an entry of `ACTIVATIONS`."""
  mlp_dim: int
  dropout_rate: float = 0.0
  activation: Activation = "gelu_tanh"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """`[..., D]` -> `[..., D]`."""
    y = activation_fn(self.activation)(nn.Dense(self.mlp_dim, name="fc1")(x))
    y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    y = nn.Dense(x.shape[-1], name="fc2")(y)
    return nn.Dropout(self.dropout_rate, deterministic=not train)(y)


class TransformerBlock(nn.Module):
  """Transformer layer: attention, then MLP, each residual.

  Pre-LayerNorm by default (`x + f(LN(x))`); with `norm_first=False`,
  post-LayerNorm as in the original Transformer and BERT (`LN(x + f(x))`).
  Self-attention by default; with `context`, cross-attention from `x` to the
  context tokens, as in MulT's crossmodal layers (Tsai et al. 2019,
  "Multimodal Transformer for Unaligned Multimodal Language Sequences"),
  with two departures from MulT's code (yaohungt/Multimodal-Transformer,
  `modules/transformer.py`):
    - pre-LN, the context is normalised by its own LayerNorm
      (`context_norm`, its own scale and bias); MulT normalises query, key
      and value with one shared LayerNorm (`layer_norms[0]`). Post-LN
      normalises no context, as MulT's post-LN option.
    - no causal mask by default (`causal=False`): every query attends to
      every valid context token (`context_mask`). MulT's default (`--attn_mask`, on unless disabled)
      masks each query's "future" context positions (`buffered_future_mask`,
      offset by the length difference of the two streams).

  Attributes:
    num_heads: attention heads.
    mlp_dim: hidden width of the MLP.
    dropout_rate: dropout after attention and in the MLP.
    norm_first: pre-LayerNorm (True) or post-LayerNorm (False).
    layer_norm_epsilon: epsilon of every LayerNorm.
    activation: MLP nonlinearity, a key of `ACTIVATIONS`.
    causal: causal self-attention (see `MultiHeadAttention`). With a
      context it also applies: query t sees context positions s <= t
      (`tril` of `[T, S]`, aligned at the start), not MulT's mask offset
      by the length difference.
    attention_implementation: "auto" (or None), "xla" or "cudnn" (`attend`).

  `__call__` takes `mask`, `context`, `context_mask` and `train` by
  position too, so that `nn.remat` can treat `train` as static (argument 5).
  """
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  norm_first: bool = True
  layer_norm_epsilon: float = 1e-6
  activation: Activation = "gelu_tanh"
  causal: bool = False
  attention_implementation: Optional[str] = "auto"

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None,
               context: Optional[Array] = None,
               context_mask: Optional[Array] = None,
               train: bool = False) -> Array:
    """One layer.

    Args:
      x: float `[B, T, D]`.
      mask: bool `[B, T]` valid tokens of `x` (keys of self-attention); None:
        all valid.
      context: float `[B, S, Dc]` or None (self-attention).
      context_mask: bool `[B, S]` valid context tokens; None: all valid.
      train: enables dropout.

    Returns:
      float `[B, T, D]`.
    """
    norm = lambda name: nn.LayerNorm(epsilon=self.layer_norm_epsilon, name=name)
    attention = MultiHeadAttention(
        self.num_heads, dropout_rate=self.dropout_rate, causal=self.causal,
        attention_implementation=self.attention_implementation,
        name="attention")
    mlp = MlpBlock(self.mlp_dim, self.dropout_rate, self.activation, name="mlp")
    if not self.norm_first:
      kv, kv_mask = (x, mask) if context is None else (context, context_mask)
      x = norm("attention_norm")(x + attention(x, kv, kv_mask, train=train))
      return norm("mlp_norm")(x + mlp(x, train=train))
    y = norm("attention_norm")(x)
    if context is None:
      kv, kv_mask = y, mask
    else:
      kv, kv_mask = norm("context_norm")(context), context_mask
    x = x + attention(y, kv, kv_mask, train=train)
    return x + mlp(norm("mlp_norm")(x), train=train)


def transformer_block(remat: str = "none"):
  """`TransformerBlock`, rematerialised under the policy named `remat`
  (`mmjax.models.layers.remat`); call it with every argument by position,
  `(x, mask, context, context_mask, train)`. Parameter names are those of
  `TransformerBlock` under every policy.

  Raises:
    ValueError: for an unknown `remat`.
  """
  return remat_module(TransformerBlock, remat, static_argnums=(5,))


class TransformerEncoder(nn.Module):
  """`num_layers` `TransformerBlock`s, then a final LayerNorm.

  Attributes:
    num_layers: number of layers (0 gives only the final LayerNorm).
    num_heads: attention heads.
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the layers.
    norm_first, layer_norm_epsilon, activation, causal,
      attention_implementation: of every layer (see `TransformerBlock`).
    final_norm: end with a LayerNorm (`final_norm`), as pre-LN encoders do;
      post-LN encoders (BERT) end normalised and have none.
    remat: rematerialisation policy of each layer: "none", "full" or "dots"
      (`mmjax.models.layers.remat`); the parameters are the same.

  Raises:
    ValueError: for an unknown `remat` or `attention_implementation`.
  """
  num_layers: int
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  norm_first: bool = True
  layer_norm_epsilon: float = 1e-6
  activation: Activation = "gelu_tanh"
  causal: bool = False
  final_norm: bool = True
  attention_implementation: Optional[str] = "auto"
  remat: str = "none"

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None, *,
               train: bool) -> Array:
    """`[B, T, D]` tokens, bool `[B, T]` mask (None: all valid) ->
    `[B, T, D]`."""
    block = transformer_block(self.remat)
    for i in range(self.num_layers):
      x = block(
          self.num_heads, self.mlp_dim, self.dropout_rate, self.norm_first,
          self.layer_norm_epsilon, self.activation, self.causal,
          self.attention_implementation,
          name=f"layer_{i}")(x, mask, None, None, train)
    if not self.final_norm:
      return x
    return nn.LayerNorm(epsilon=self.layer_norm_epsilon, name="final_norm")(x)
