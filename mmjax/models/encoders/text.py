"""Text encoders: token ids `[batch, length]` -> tokens `[batch, tokens, dim]`
and a token mask `[batch, tokens]`."""

from typing import Any, ClassVar, Dict, Literal, Mapping, Tuple, get_args

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.encoders.text_input import check_text
from mmjax.models.layers.attention import Activation, TransformerEncoder
from mmjax.models.layers.masking import masked_mean
from mmjax.models.registries import ENCODERS

Pool = Literal["none", "cls", "eos", "mean"]
POOLS = get_args(Pool)
Pooler = Literal["none", "dense_tanh"]
POOLERS = get_args(Pooler)


@ENCODERS.register("text_transformer")
class TextTransformer(nn.Module):
  """A Transformer over token ids: BERT (Devlin et al. 2019, "BERT:
  Pre-training of Deep Bidirectional Transformers for Language
  Understanding") and CLIP's text tower (Radford et al. 2021, "Learning
  Transferable Visual Models From Natural Language Supervision").

  Token, learned position (and token-type) embeddings are summed, then run
  through a `TransformerEncoder` whose self-attention sees only the real
  tokens (`token_mask`). The defaults are a small mmjax model (pre-LN,
  tanh-approximated GELU, epsilon 1e-6, no token types); the published
  towers whose weights `mmjax.pretrained` loads are:
    BERT: post-LN (`norm_first=False`), exact GELU, epsilon 1e-12,
      `type_vocab_size=2`, `embedding_norm`, no `final_norm`; pool "cls"
      with pooler "dense_tanh" is its `pooler_output`.
    CLIP text: pre-LN, causal, quick GELU, epsilon 1e-5, `final_norm`
      (`final_layer_norm`), no token types; pool "eos" is its
      `pooler_output`.

  Parameters: `token_embedding`, `position_embedding` (`embedding`
  `[max_length, D]`), `type_embedding`, `embedding_norm`, `encoder`
  (`layer_{i}`, `final_norm`), `pooler`.

  Attributes:
    vocab_size: number of token ids; ids must lie in [0, vocab_size).
    hidden_dim: token width D.
    num_layers: Transformer layers.
    num_heads: attention heads (must divide hidden_dim).
    mlp_dim: MLP hidden width.
    dropout_rate: dropout on the embeddings and inside the Transformer
      (training only).
    max_length: rows of the position table: the longest input.
    type_vocab_size: token types (BERT's segments); 0: no token-type
      embeddings (CLIP).
    norm_first: pre-LayerNorm (True) or post-LayerNorm layers (BERT).
    layer_norm_epsilon: epsilon of every LayerNorm.
    activation: MLP nonlinearity ("gelu_tanh", "gelu", "quick_gelu",
      "relu").
    causal: token t attends only to tokens at or before t (CLIP).
    embedding_norm: a LayerNorm on the summed embeddings (BERT).
    final_norm: a LayerNorm after the last layer (CLIP's
      `final_layer_norm`).
    pool: "none" (every token, mask = `token_mask`: a Hugging Face
      `last_hidden_state`), "cls" (the first token), "eos" (the token at
      the end-of-sequence position, see `eos_token_id`) or "mean" (the mean
      of the real tokens).
    pooler: on the pooled token: "none" or "dense_tanh" (`pooler`: Dense +
      tanh, BERT's pooler).
    eos_token_id: pool "eos" takes, per example, the first real position
      (`token_mask`) whose id is `eos_token_id`; -1: the first real position
      of the largest real id (OpenAI CLIP, whose end-of-text token has the
      largest id). Both as Hugging Face's `CLIPTextModel` (which keeps the
      largest-id rule for configs with `eos_token_id` 2), except that ids
      at padded positions are never chosen. An example without the id
      among its real tokens pools position 0.
    attention_implementation: "auto", "xla" or "cudnn": the attention
      kernel (`mmjax.models.layers.attention_implementation`).
    remat: "none", "full" or "dots": rematerialisation of each Transformer
      layer (`mmjax.models.layers.remat`); parameters are unchanged.
  """
  modality: ClassVar[str] = "text"
  vocab_size: int = 1000
  hidden_dim: int = 128
  num_layers: int = 2
  num_heads: int = 4
  mlp_dim: int = 256
  dropout_rate: float = 0.0
  max_length: int = 64
  type_vocab_size: int = 0
  norm_first: bool = True
  layer_norm_epsilon: float = 1e-6
  activation: Activation = "gelu_tanh"
  causal: bool = False
  embedding_norm: bool = False
  final_norm: bool = True
  pool: Pool = "none"
  pooler: Pooler = "none"
  eos_token_id: int = -1
  attention_implementation: str = "auto"
  remat: str = "none"

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"vocab_size": 256, "hidden_dim": 32, "num_layers": 1,
            "num_heads": 2, "mlp_dim": 64, "max_length": 16}

  @nn.compact
  def __call__(self, inputs: Mapping[str, jnp.ndarray], *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes right-padded token sequences.

    Args:
      inputs: `{"token_ids": int [batch, length], "token_mask": bool or int
        [batch, length] (1 = real token; absent: all real), optional
        "token_type_ids": int [batch, length] (absent: type 0)}`.
      train: enables dropout.

    Returns:
      (tokens float32 `[batch, length, hidden_dim]` for pool "none" (padded
      positions hold values but are masked), else `[batch, 1, hidden_dim]`;
      token mask bool: `token_mask` for pool "none", else all True).

    Raises:
      ValueError: for inputs that are not such a mapping, mismatched
        shapes, a length above `max_length`, token types without
        `type_vocab_size`, or an unknown `pool`, `pooler` or
        `activation`; or a `pooler` with pool "none".
    """
    if self.pool not in POOLS:
      raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
    if self.pooler not in POOLERS:
      raise ValueError(f"pooler must be one of {POOLERS}, got {self.pooler!r}")
    if self.pooler != "none" and self.pool == "none":
      raise ValueError(f"pooler={self.pooler!r} needs a pooled output (pool "
                       f"'cls', 'eos' or 'mean'), got pool 'none'")
    ids, mask, types = check_text(inputs, self.max_length,
                                   self.type_vocab_size)
    embed_init = nn.initializers.normal(0.02)
    embed = lambda n, name: nn.Embed(n, self.hidden_dim,
                                     embedding_init=embed_init, name=name)
    x = embed(self.vocab_size, "token_embedding")(ids)
    if self.type_vocab_size:
      if types is None:
        types = jnp.zeros_like(ids)
      x = x + embed(self.type_vocab_size, "type_embedding")(types)
    positions = embed(self.max_length, "position_embedding").embedding
    x = x + positions[None, :ids.shape[1]]
    if self.embedding_norm:
      x = nn.LayerNorm(epsilon=self.layer_norm_epsilon,
                       name="embedding_norm")(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = TransformerEncoder(
        self.num_layers, self.num_heads, self.mlp_dim, self.dropout_rate,
        norm_first=self.norm_first,
        layer_norm_epsilon=self.layer_norm_epsilon,
        activation=self.activation, causal=self.causal,
        final_norm=self.final_norm,
        attention_implementation=self.attention_implementation,
        remat=self.remat,
        name="encoder")(x, mask, train=train)
    x = x.astype(jnp.float32)
    if self.pool == "none":
      return x, mask
    if self.pool == "cls":
      pooled = x[:, :1]
    elif self.pool == "eos":
      hits = ids if self.eos_token_id < 0 else (ids == self.eos_token_id)
      hits = jnp.where(mask, hits.astype(jnp.int32), -1)
      position = jnp.argmax(hits, axis=1)
      pooled = jnp.take_along_axis(x, position[:, None, None], axis=1)
    else:
      weights = mask.astype(x.dtype)[..., None]
      pooled = ((x * weights).sum(axis=1, keepdims=True)
                / jnp.maximum(weights.sum(axis=1, keepdims=True), 1.0))
    if self.pooler == "dense_tanh":
      pooled = jnp.tanh(nn.Dense(self.hidden_dim, name="pooler")(pooled))
    return pooled, jnp.ones(pooled.shape[:2], bool)


@ENCODERS.register("bag_of_embeddings")
class BagOfEmbeddings(nn.Module):
  """The mean of the real tokens' embeddings, one token per example: the
  fastText baseline (Joulin et al. 2017, "Bag of Tricks for Efficient Text
  Classification") and the deep averaging network's input (Iyyer et al.
  2015, "Deep Unordered Composition Rivals Syntactic Methods for Text
  Classification"). Word order is ignored.

  Parameters: `token_embedding` (`embedding` `[vocab_size, embed_dim]`),
  `projection` (when `projection_dim` > 0).

  Attributes:
    vocab_size: number of token ids; ids must lie in [0, vocab_size).
    embed_dim: embedding width.
    dropout_rate: dropout on the mean (training only).
    max_length: the longest input accepted.
    projection_dim: > 0: a Dense layer of that width on the mean (after
      dropout); 0: the mean itself is the output.
  """
  modality: ClassVar[str] = "text"
  vocab_size: int = 1000
  embed_dim: int = 128
  dropout_rate: float = 0.0
  max_length: int = 64
  projection_dim: int = 0

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"vocab_size": 256, "embed_dim": 16, "max_length": 16}

  @nn.compact
  def __call__(self, inputs: Mapping[str, jnp.ndarray], *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Averages right-padded (or any masked) token sequences.

    Args:
      inputs: `{"token_ids": int [batch, length], "token_mask": bool or int
        [batch, length] (1 = real token; absent: all real)}`.
      train: enables dropout.

    Returns:
      (tokens float32 `[batch, 1, projection_dim or embed_dim]`, zeros for
      an example without real tokens; token mask bool `[batch, 1]`, all
      True).

    Raises:
      ValueError: for inputs that are not such a mapping, mismatched
        shapes, a length above `max_length` or `token_type_ids`.
    """
    ids, mask, _ = check_text(inputs, self.max_length, 0)
    x = nn.Embed(self.vocab_size, self.embed_dim,
                 name="token_embedding")(ids).astype(jnp.float32)
    x = masked_mean(x, mask)[:, None]
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    if self.projection_dim:
      x = nn.Dense(self.projection_dim, name="projection")(x)
    return x, jnp.ones(x.shape[:2], bool)
