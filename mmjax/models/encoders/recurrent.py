"""Bidirectional recurrent text encoders (LSTM, GRU): token ids
`[batch, length]` -> tokens `[batch, tokens, 2 * hidden_dim]` and a token mask
`[batch, tokens]`."""

from typing import (Any, Callable, ClassVar, Dict, Literal, Mapping, Tuple,
                    get_args)

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.encoders.text_input import check_text
from mmjax.models.layers.masking import masked_mean
from mmjax.models.registries import ENCODERS

Pool = Literal["none", "last", "mean"]
POOLS = get_args(Pool)


class BidirectionalRecurrent(nn.Module):
  """Token embeddings, then `num_layers` bidirectional recurrent layers
  (Schuster & Paliwal 1997, "Bidirectional Recurrent Neural Networks") whose
  cell `cell_type` each subclass sets.

  Each direction runs over the real tokens of each example only (Flax
  `nn.RNN` with `seq_lengths`): the backward direction starts at the last
  real token, and padding never changes the outputs at real positions.
  Inputs must be right-padded: the encoder reads only the number of real
  tokens of each example. The forward and backward outputs are concatenated
  (width `2 * hidden_dim`).

  Parameters: `token_embedding` (`embedding` `[vocab_size, embed_dim]`),
  `layer_{i}` (`forward_rnn`, `backward_rnn`, each with its `cell`).

  Attributes:
    vocab_size: number of token ids; ids must lie in [0, vocab_size).
    embed_dim: embedding width.
    hidden_dim: state width of each direction.
    num_layers: stacked bidirectional layers.
    dropout_rate: dropout on the input of every layer (the embeddings and
      the previous layer's outputs; training only).
    pool: "none" (default: every position, mask = `token_mask`, as the other
      encoders give fusion blocks their tokens), "last" (the forward output
      at the last real token concatenated with the backward output at the
      first token, the classic sentence vector) or "mean" (the mean of the
      real positions); pooled: one token, mask True.
  """
  modality: ClassVar[str] = "text"
  cell_type: ClassVar[Callable[..., nn.RNNCellBase]]
  vocab_size: int = 1000
  embed_dim: int = 128
  hidden_dim: int = 64
  num_layers: int = 1
  dropout_rate: float = 0.0
  pool: Pool = "none"

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"vocab_size": 256, "embed_dim": 16, "hidden_dim": 16}

  @nn.compact
  def __call__(self, inputs: Mapping[str, jnp.ndarray], *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes right-padded token sequences.

    Args:
      inputs: `{"token_ids": int [batch, length], "token_mask": bool or int
        [batch, length] (1 = real token, a prefix of each row; absent: all
        real)}`.
      train: enables dropout.

    Returns:
      (tokens float32 `[batch, length, 2 * hidden_dim]` for pool "none"
      (zeros at padded positions), else `[batch, 1, 2 * hidden_dim]` (zeros
      for an example without real tokens); token mask bool: `token_mask`
      for pool "none", else all True).

    Raises:
      ValueError: for inputs that are not such a mapping, mismatched
        shapes, `token_type_ids`, an unknown `pool` or `num_layers` < 1.
    """
    if self.pool not in POOLS:
      raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
    if self.num_layers < 1:
      raise ValueError(f"num_layers must be at least 1, got {self.num_layers}")
    ids, mask, _ = check_text(inputs, None, 0)
    lengths = mask.sum(axis=1)
    x = nn.Embed(self.vocab_size, self.embed_dim,
                 name="token_embedding")(ids).astype(jnp.float32)
    # parent=None: adopted by the Bidirectional layer, not by this module.
    rnn = lambda: nn.RNN(self.cell_type(self.hidden_dim, parent=None),
                         parent=None)
    for i in range(self.num_layers):
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = nn.Bidirectional(rnn(), rnn(), name=f"layer_{i}")(
          x, seq_lengths=lengths)
    x = jnp.where(mask[..., None], x, 0.0)
    if self.pool == "none":
      return x, mask
    if self.pool == "mean":
      pooled = masked_mean(x, mask)
    else:
      last = jnp.maximum(lengths - 1, 0)[:, None, None]
      forward = jnp.take_along_axis(x, last, axis=1)[:, 0, :self.hidden_dim]
      pooled = jnp.concatenate([forward, x[:, 0, self.hidden_dim:]], axis=-1)
    return pooled[:, None], jnp.ones((ids.shape[0], 1), bool)


@ENCODERS.register("lstm")
class LSTM(BidirectionalRecurrent):
  """A bidirectional LSTM (Hochreiter & Schmidhuber 1997, "Long Short-Term
  Memory"; Flax's `OptimizedLSTMCell`, forget gate as Gers et al. 2000).
  See `BidirectionalRecurrent`."""
  cell_type: ClassVar[Callable[..., nn.RNNCellBase]] = nn.OptimizedLSTMCell


@ENCODERS.register("gru")
class GRU(BidirectionalRecurrent):
  """A bidirectional GRU (Cho et al. 2014, "Learning Phrase Representations
  using RNN Encoder-Decoder for Statistical Machine Translation"). See
  `BidirectionalRecurrent`."""
  cell_type: ClassVar[Callable[..., nn.RNNCellBase]] = nn.GRUCell
