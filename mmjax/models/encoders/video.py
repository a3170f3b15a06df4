"""Video encoders: `{"frames": [batch, T, H, W, C], "frame_mask": [batch, T]}`
-> tokens `[batch, tokens, dim]` and a token mask `[batch, tokens]`.

Frames are float32 in about [0, 1] at `frame_rate` Hz; `frame_mask` is True
for real frames, False for the padding at the end of a short clip
(`mmjax.data.pp.video`). Padded frames are replaced by zeros before any
layer sees them, so their content (even NaN) reaches neither the tokens nor
the gradients, and the tokens that cover only padding are masked.
"""

import dataclasses
from typing import Any, ClassVar, Dict, Literal, Mapping, Tuple, get_args

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.layers.masking import masked_mean
from mmjax.models.layers.attention import (AddPositionalEmbedding,
                                           PositionalEmbedding,
                                           TransformerEncoder)
from mmjax.models.layers.patch_transformer import PatchTransformer
from mmjax.models.registries import ENCODERS

Temporal = Literal["mean", "lstm", "transformer"]
TEMPORAL = get_args(Temporal)
SpatialPool = Literal["cls", "mean"]
SPATIAL_POOLS = get_args(SpatialPool)
_EXPECTED = ("{'frames': float32 [batch, frames, height, width, channels], "
             "'frame_mask': bool [batch, frames]}")


def _check_video(inputs, encoder: str) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """(frames `[B, T, H, W, C]` with padded frames zeroed, bool mask
  `[B, T]`) of a video batch, checked (ValueError naming `encoder`). Floating
  frames keep their dtype (bfloat16 under mixed precision), others become
  float32."""
  if not isinstance(inputs, Mapping):
    raise ValueError(f"{encoder} expects {_EXPECTED}, got "
                     f"{type(inputs).__name__}")
  for key in ("frames", "frame_mask"):
    if key not in inputs:
      raise ValueError(f"{encoder}: the video input has no {key!r} (keys "
                       f"{sorted(inputs)}); expected {_EXPECTED}")
  frames = jnp.asarray(inputs["frames"])
  if not jnp.issubdtype(frames.dtype, jnp.floating):
    frames = frames.astype(jnp.float32)
  mask = jnp.asarray(inputs["frame_mask"]).astype(bool)
  if frames.ndim != 5 or mask.shape != frames.shape[:2]:
    raise ValueError(f"{encoder}: got frames {frames.shape} and frame_mask "
                     f"{mask.shape}; expected {_EXPECTED}")
  return jnp.where(mask[:, :, None, None, None], frames, 0.0), mask


def _frame_centres(num_tokens: int, frames_per_token: int,
                   frame_rate: float) -> np.ndarray:
  """float32 `[num_tokens]` seconds: the centre of frames `[k, k + 1) *
  frames_per_token`, frame f covering `[f, f + 1) / frame_rate`."""
  return ((np.arange(num_tokens) + 0.5) * frames_per_token /
          frame_rate).astype(np.float32)


@ENCODERS.register("frame_encoder")
class FrameEncoder(nn.Module):
  """A registered image encoder on every frame, then a temporal model.

  Each frame's image tokens are mean-pooled into one vector, projected by a
  Dense to `dim`, then combined over time by `temporal`:
    "mean": one token, the mean over the real frames (as the average-pooled
      frame features of Karpathy et al. 2014, "Large-scale Video
      Classification with Convolutional Neural Networks"); mask True when
      the clip has a real frame.
    "lstm": `num_layers` bidirectional LSTM layers (Donahue et al. 2015,
      "Long-term Recurrent Convolutional Networks"; Hochreiter & Schmidhuber
      1997), each direction `dim // 2` wide and run over each clip's real
      frames only (`nn.RNN` with `seq_lengths`, as the recurrent text
      encoders); one token per frame. Needs right-padded clips (the mask a
      prefix of each row, as the data pipeline makes them).
    "transformer": positional embeddings, then a pre-LN `TransformerEncoder`
      whose attention sees only the real frames; one token per frame.
  Tokens of padded frames are zeros and masked.

  The image encoder sees `batch * T` frames at once; with a BatchNorm one
  (resnet, norm "batch") the zeroed padding frames enter its batch
  statistics in training.

  Attributes:
    image_encoder: `{"name": <registered image encoder>, **its attributes}`,
      optionally with `init_from`: an mmjax run whose image encoder
      initialises it (`mmjax.pretrained.load`).
    temporal: "mean", "lstm" or "transformer".
    dim: token width (even for "lstm").
    num_layers: LSTM or Transformer layers.
    num_heads: attention heads ("transformer"; must divide dim).
    mlp_dim: Transformer MLP width.
    dropout_rate: dropout on the frame vectors and inside the temporal model
      (training only).
    positional_embedding: "learned" (fixes T at init), "sinusoidal" or
      "time" (sinusoids of `token_times`), for "transformer".
    frame_rate: Hz, frames per second of the frames the encoder receives
      (after any frame stride of the input pipeline).
    attention_implementation: "auto", "xla" or "cudnn": the attention kernel
      of the "transformer" temporal model
      (`mmjax.models.layers.attention_implementation`); the image encoder
      has its own key in `image_encoder`.
    remat: "none", "full" or "dots": rematerialisation of each temporal
      Transformer layer (`mmjax.models.layers.remat`); parameters are
      unchanged.
  """
  modality: ClassVar[str] = "video"
  image_encoder: Mapping[str, Any] = dataclasses.field(
      default_factory=lambda: {"name": "cnn", "features": (16, 32),
                               "embed_dim": 64})
  temporal: Temporal = "transformer"
  dim: int = 64
  num_layers: int = 1
  num_heads: int = 4
  mlp_dim: int = 128
  dropout_rate: float = 0.0
  positional_embedding: PositionalEmbedding = "learned"
  frame_rate: float = 4.0
  attention_implementation: str = "auto"
  remat: str = "none"

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"image_encoder": {"name": "cnn", "features": (8,), "embed_dim": 16},
            "dim": 16, "num_heads": 2, "mlp_dim": 32}

  @nn.compact
  def __call__(self, inputs: Mapping[str, jnp.ndarray], *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes clips.

    Args:
      inputs: `{"frames": float32 [batch, T, H, W, C], "frame_mask": bool
        [batch, T]}`, H, W, C as the image encoder takes them.
      train: enables dropout (and the image encoder's training mode).

    Returns:
      (tokens float32 `[batch, T, dim]` ("lstm", "transformer"; zeros at
      padded frames) or `[batch, 1, dim]` ("mean"); token mask bool:
      `frame_mask`, or `[batch, 1]` True where a frame is real).

    Raises:
      ValueError: for an input that is not such a mapping, an unknown
        `temporal`, an image encoder of another modality, or an odd `dim`
        with "lstm".
    """
    if self.temporal not in TEMPORAL:
      raise ValueError(f"frame_encoder: temporal must be one of {TEMPORAL}, "
                       f"got {self.temporal!r}")
    if self.temporal == "lstm" and self.dim % 2:
      raise ValueError(f"frame_encoder: temporal 'lstm' needs an even dim "
                       f"(two directions of dim // 2), got {self.dim}")
    frames, mask = _check_video(inputs, "frame_encoder")
    batch, num_frames = mask.shape
    config = dict(self.image_encoder)
    config.pop("init_from", None)  # read by mmjax.pretrained.load
    image_cls = ENCODERS.get(config.pop("name"))
    if image_cls.modality != "image":
      raise ValueError(f"frame_encoder: image_encoder must be an image "
                       f"encoder, got {image_cls.__name__} "
                       f"({image_cls.modality})")
    tokens, token_mask = image_cls(**config, name="image_encoder")(
        frames.reshape(batch * num_frames, *frames.shape[2:]), train=train)
    x = masked_mean(tokens, token_mask).reshape(batch, num_frames, -1)
    x = nn.Dense(self.dim, name="frame_projection")(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    if self.temporal == "mean":
      return masked_mean(x, mask)[:, None], mask.any(axis=1, keepdims=True)
    if self.temporal == "lstm":
      # parent=None: adopted by the Bidirectional layer, not by this module.
      rnn = lambda: nn.RNN(nn.OptimizedLSTMCell(self.dim // 2, parent=None),
                           parent=None)
      for i in range(self.num_layers):
        if i:
          x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Bidirectional(rnn(), rnn(), name=f"lstm_{i}")(
            x, seq_lengths=mask.sum(axis=1))
    else:
      x = AddPositionalEmbedding(self.positional_embedding, name="position")(
          x, self.token_times(num_frames))
      x = TransformerEncoder(
          self.num_layers, self.num_heads, self.mlp_dim, self.dropout_rate,
          attention_implementation=self.attention_implementation,
          remat=self.remat, name="temporal")(x, mask, train=train)
    return jnp.where(mask[..., None], x, 0.0), mask

  def token_times(self, num_tokens: int) -> np.ndarray:
    """float32 `[num_tokens]`: each token's time in seconds from the start
    of the clip.

    "lstm", "transformer": token k is frame k, covering `[k, k + 1) /
    frame_rate` s, and is placed at its centre, `(k + 0.5) / frame_rate`.
    "mean": the one token pools the whole clip, whose length `num_tokens`
    does not tell (nor can a parameter-free method know it), so it is given
    0 s, the start of the clip window; choose "lstm" or "transformer" for
    fusion that aligns tokens in time.
    """
    if self.temporal == "mean":
      return np.zeros(num_tokens, np.float32)
    return _frame_centres(num_tokens, 1, self.frame_rate)


@ENCODERS.register("vivit")
class ViViT(nn.Module):
  """ViViT's factorised encoder (Arnab et al. 2021, "ViViT: A Video Vision
  Transformer", model 2).

  Tubelet embedding: each non-overlapping `tubelet_size` x `patch_size` x
  `patch_size` tubelet is linearly embedded to `hidden_dim`. The t frames of
  a tubelet are stacked along channels and cut into p x p patches by
  `PatchTransformer` (a Conv of kernel and stride p over t * C channels: the
  same linear map of the flattened tubelet as ViViT's 3-D Conv of kernel and
  stride (t, p, p)). A spatial Transformer (learned positions, as ViT) then
  encodes the patches of each temporal index separately and pools them to
  one vector (its CLS token's output, or the patch mean); a temporal
  Transformer over the temporal indices, whose attention sees only the
  valid ones, gives one token per temporal index.

  Departures from ViViT model 2: the temporal Transformer has no CLS token
  of its own (ViViT classifies from it); every temporal index is a token,
  which the fusion block or head pools. ViViT has no padding; here padded
  frames are zeroed and masked (module docstring).

  Attributes:
    patch_size: p, patch height and width in pixels.
    tubelet_size: t, frames per tubelet.
    hidden_dim: token width (spatial and temporal).
    spatial_layers: layers of the spatial Transformer.
    temporal_layers: layers of the temporal Transformer.
    num_heads: attention heads of both (must divide hidden_dim).
    mlp_dim: MLP width of both.
    dropout_rate: dropout inside both (training only).
    spatial_pool: "cls" (as ViViT) or "mean".
    positional_embedding: temporal positions: "learned" (fixes T / t at
      init, as ViViT), "sinusoidal" or "time" (sinusoids of `token_times`).
    frame_rate: Hz, frames per second of the frames the encoder receives.
    attention_implementation: "auto", "xla" or "cudnn": the attention kernel
      of both Transformers (`mmjax.models.layers.attention_implementation`).
    remat: "none", "full" or "dots": rematerialisation of each layer of both
      (`mmjax.models.layers.remat`); parameters are unchanged.
  """
  modality: ClassVar[str] = "video"
  patch_size: int = 8
  tubelet_size: int = 2
  hidden_dim: int = 64
  spatial_layers: int = 2
  temporal_layers: int = 2
  num_heads: int = 4
  mlp_dim: int = 128
  dropout_rate: float = 0.0
  spatial_pool: SpatialPool = "cls"
  positional_embedding: PositionalEmbedding = "learned"
  frame_rate: float = 4.0
  attention_implementation: str = "auto"
  remat: str = "none"

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"patch_size": 16, "hidden_dim": 16, "spatial_layers": 1,
            "temporal_layers": 1, "num_heads": 2, "mlp_dim": 32}

  @nn.compact
  def __call__(self, inputs: Mapping[str, jnp.ndarray], *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes clips.

    Args:
      inputs: `{"frames": float32 [batch, T, H, W, C], "frame_mask": bool
        [batch, T]}`; T a multiple of tubelet_size, H and W of patch_size.
      train: enables dropout.

    Returns:
      (tokens float32 `[batch, T / t, hidden_dim]`, zeros at masked
      indices; token mask bool `[batch, T / t]`, True where the tubelet has
      a real frame).

    Raises:
      ValueError: for an input that is not such a mapping, T not divisible
        by tubelet_size, H or W not divisible by patch_size, or an unknown
        `spatial_pool`.
    """
    if self.spatial_pool not in SPATIAL_POOLS:
      raise ValueError(f"vivit: spatial_pool must be one of {SPATIAL_POOLS}, "
                       f"got {self.spatial_pool!r}")
    frames, frame_mask = _check_video(inputs, "vivit")
    batch, num_frames, height, width, channels = frames.shape
    t, p = self.tubelet_size, self.patch_size
    if num_frames % t:
      raise ValueError(f"vivit: {num_frames} frames are not divisible by "
                       f"tubelet_size={t}")
    if height % p or width % p:
      raise ValueError(f"vivit: frame size {height}x{width} is not divisible "
                       f"by patch_size={p}")
    steps = num_frames // t
    tubelets = frames.reshape(batch, steps, t, height, width, channels)
    tubelets = tubelets.transpose(0, 1, 3, 4, 2, 5).reshape(
        batch * steps, height, width, t * channels)
    x = PatchTransformer(
        patch_size=(p, p), hidden_dim=self.hidden_dim,
        num_layers=self.spatial_layers, num_heads=self.num_heads,
        mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
        pool=self.spatial_pool,
        attention_implementation=self.attention_implementation,
        remat=self.remat, name="spatial")(tubelets, train=train)
    x = x.reshape(batch, steps, self.hidden_dim)
    mask = frame_mask.reshape(batch, steps, t).any(axis=2)
    x = AddPositionalEmbedding(self.positional_embedding, name="position")(
        x, self.token_times(steps))
    x = TransformerEncoder(
        self.temporal_layers, self.num_heads, self.mlp_dim, self.dropout_rate,
        attention_implementation=self.attention_implementation,
        remat=self.remat, name="temporal")(x, mask, train=train)
    return jnp.where(mask[..., None], x, 0.0), mask

  def token_times(self, num_tokens: int) -> np.ndarray:
    """float32 `[num_tokens]`: each token's time in seconds from the start
    of the clip; token k covers frames `[k t, (k + 1) t)`, i.e. `[k t, (k +
    1) t) / frame_rate` s, and is placed at their centre."""
    return _frame_centres(num_tokens, self.tubelet_size, self.frame_rate)
