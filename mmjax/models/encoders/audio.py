"""Audio encoders: waveform `[batch, samples]` -> tokens `[batch, tokens, dim]`
and a token mask `[batch, tokens]`."""

from typing import (Any, ClassVar, Dict, Literal, Mapping, Optional, Sequence,
                    Tuple, get_args)

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.layers.attention import Activation, PositionalEmbedding
from mmjax.models.layers.audio_frontend import AudioFrontEnd
from mmjax.models.layers.conv_block import ConvBlock
from mmjax.models.layers.kaldi_fbank import ast_features
from mmjax.models.layers.patch_transformer import PatchTransformer, Pool
from mmjax.models.layers.spec_augment import spec_augment
from mmjax.models.registries import ENCODERS

# Keyword arguments of the "ast_fbank" front end (`ast_features`).
AST_FBANK_KEYS = ("max_length", "num_mel_bins", "sample_rate", "mean", "std",
                  "normalize")
PatchOrder = Literal["time_major", "frequency_major"]
PATCH_ORDERS = get_args(PatchOrder)
# Axes of `[batch, frames, features]` the features are standardised over, by
# `Normalization`.
Normalization = Literal["utterance", "band", "band_mean"]
# name -> (axes of the mean, axes of the standard deviation) of
# `[batch, frames, features]`.
NORMALIZATIONS = {"utterance": ((1, 2), (1, 2)), "band": ((1,), (1,)),
                  "band_mean": ((1,), (1, 2))}


def standardize(spec: jnp.ndarray, normalization: str) -> jnp.ndarray:
  """Zero mean, unit variance per example: over time and features
  ("utterance"); per feature over time ("band", CMVN); or zero mean per
  feature over time and unit variance over time and features ("band_mean":
  cepstral mean normalisation, Kaldi's `apply-cmvn` default of
  `--norm-vars=false`, with the utterance's variance), which removes a
  spectral tilt like "band" without scaling a near-silent band (e.g. above
  a telephone channel's cutoff) up to unit variance.

  Args:
    spec: `[batch, frames, features]` float.
    normalization: a key of `NORMALIZATIONS`.

  Raises:
    ValueError: for an unknown `normalization`.
  """
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization must be one of {sorted(NORMALIZATIONS)}, "
                     f"got {normalization!r}")
  mean_axes, std_axes = NORMALIZATIONS[normalization]
  centred = spec - spec.mean(axis=mean_axes, keepdims=True)
  std = centred.std(axis=std_axes, keepdims=True)
  return centred / (std + 1e-5)


class SpectrogramEncoder(nn.Module):
  """Base of the spectrogram encoders: front end, standardisation, SpecAugment.

  The front end (`mmjax.models.layers.audio_frontend`) runs inside the model,
  so features are computed on the accelerator in the jitted step. Each
  example's features are standardised: over time and frequency
  (`normalization="utterance"`, zero mean and unit variance), which removes
  recording loudness, or per feature over time (`"band"`: cepstral mean and
  variance normalisation, CMVN, Viikki & Laurila 1998), which also removes a
  fixed spectral tilt of the voice or the channel, or per-feature mean and
  utterance variance (`"band_mean"`, see `standardize`). In training, SpecAugment
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
    normalization: "utterance", "band" or "band_mean" (see above).
  """
  modality: ClassVar[str] = "audio"
  frontend: Optional[Mapping[str, Any]] = None
  freq_masks: int = 0
  freq_mask_width: int = 8
  time_masks: int = 0
  time_mask_width: int = 10
  normalization: Normalization = "utterance"

  def spectrogram(self, waveform: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """`frontend_features` (standardised), masked by SpecAugment in training.

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
    spec = self.frontend_features(waveform)
    if train and (self.freq_masks > 0 or self.time_masks > 0):
      spec = spec_augment(
          self.make_rng("augment"), spec, num_freq_masks=self.freq_masks,
          max_freq_width=self.freq_mask_width, num_time_masks=self.time_masks,
          max_time_width=self.time_mask_width)
    return spec

  def frontend_features(self, waveform: jnp.ndarray) -> jnp.ndarray:
    """The front end's features, standardised per example (no SpecAugment).

    Subclasses with other features override this (`SpectrogramTransformer`:
    AST's Kaldi filter banks).

    Args:
      waveform: float32 `[batch, samples]`.

    Returns:
      `[batch, frames, n_features]` in the waveform's dtype.

    Raises:
      ValueError: for an unknown `normalization`.
    """
    spec = AudioFrontEnd(**dict(self.frontend or {}))(waveform)
    return standardize(spec, self.normalization).astype(waveform.dtype)


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

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"features": (8, 16), "embed_dim": 16, "frontend": {"n_mels": 16}}

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

  def token_times(self, num_tokens: int) -> np.ndarray:
    """float32 `[num_tokens]`: each token's time in seconds from the start
    of the waveform, the centre of the spectrogram frames it pools.

    Frame f of the centred STFT is centred on sample `f * hop_length`; each
    conv block halves time, so token k pools frames `[k, k + 1) * 2**L`.
    """
    frontend = AudioFrontEnd(**dict(self.frontend or {}), parent=None)
    frames_per_token = 2 ** len(self.features)
    frame = (np.arange(num_tokens) + 0.5) * frames_per_token - 0.5
    return (frame * frontend.hop_length / frontend.sample_rate).astype(
        np.float32)


@ENCODERS.register("spectrogram_transformer")
class SpectrogramTransformer(SpectrogramEncoder):
  """Audio Spectrogram Transformer (Gong et al. 2021, "AST: Audio Spectrogram
  Transformer").

  Features come from `SpectrogramEncoder.spectrogram` (with SpecAugment in
  training), and the [time, freq] plane is cut into `patch_size` patches that
  `PatchTransformer` embeds and encodes. The defaults are mmjax's own model,
  trained from scratch: per-example standardised log-mel features,
  non-overlapping patches (ViT's; AST's overlapping ones cost far more
  tokens) in time-major order, the time axis zero-padded (0 is the
  standardised mean) up to a multiple of the time patch so no frame is
  dropped, pre-LN layers with tanh GELU and LayerNorm epsilon 1e-6.

  Published AST (`mmjax.pretrained.audio_spectrogram_transformer` loads its Hugging Face checkpoints)
  is `frontend={"features": "ast_fbank", "max_length": 1024,
  "num_mel_bins": 128}`, `patch_size=(16, 16)`, `patch_stride=(10, 10)`,
  `patch_order="frequency_major"`, `distillation_token=True`,
  `layer_norm_epsilon=1e-12`, `activation="gelu"`, pool "cls" (the mean of
  the CLS and distillation outputs, Hugging Face's `pooler_output`) or "all"
  (`last_hidden_state`).

  Front ends (`frontend["features"]`):
    "log_mel", "mfcc": `AudioFrontEnd` (the other `frontend` keys are its
      attributes), standardised per example.
    "ast_fbank": AST's input, `mmjax.models.layers.kaldi_fbank.ast_features`
      (the other keys are its keyword arguments: max_length, num_mel_bins,
      sample_rate, mean, std, normalize): Kaldi log filter banks of 25 ms
      Hann windows every 10 ms, padded or cut to `max_length` frames and
      normalised with fixed dataset statistics, `(x - mean) / (2 std)`
      (AudioSet's by default), as Hugging Face's `ASTFeatureExtractor`.
  With `input_features`, the encoder takes precomputed features instead of
  a waveform (e.g. `ASTFeatureExtractor`'s `input_values`).

  Attributes:
    frontend, freq_masks, freq_mask_width, time_masks, time_mask_width: see
      `SpectrogramEncoder` and the front ends above.
    hidden_dim: token width.
    num_layers: Transformer layers.
    num_heads: attention heads (must divide hidden_dim).
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the Transformer (training only).
    patch_size: (frames, frequency bins) of a patch.
    pool: "none" (all patch tokens), "cls" (only a prepended CLS token's
      output; with `distillation_token`, the mean of the CLS and
      distillation outputs), "mean" (mean of the patch tokens) or "all" (CLS,
      distillation token if any, then the patch tokens).
    positional_embedding: "learned" or "sinusoidal" ("time" is "learned"
      here: patches have no times).
    patch_stride: (frames, frequency bins) between patches; () (the
      default): `patch_size`. Patches that overlap (a stride below the
      patch size) are taken where they fit whole, as AST: trailing frames
      and bins that do not fill a patch are dropped, and nothing is padded.
    patch_order: "time_major" (patches ordered by time, then frequency; the
      patch embedding kernel is `[pt, pf, 1, hidden_dim]`) or
      "frequency_major" (by frequency, then time, kernel `[pf, pt, 1,
      hidden_dim]`: AST, which reads the features as an image with
      frequency rows). The order fixes which learned position embedding
      each patch gets.
    distillation_token: prepend a second learned token after CLS, as AST
      and DeiT (needs pool "cls" or "all").
    layer_norm_epsilon: of every LayerNorm.
    activation: MLP nonlinearity (`mmjax.models.layers.attention.ACTIVATIONS`:
      "gelu_tanh", "gelu" exact, ...).
    input_features: `__call__` takes features `[batch, frames, n_features]`
      as the front end gives them (for "ast_fbank", normalised
      `input_values`) instead of a waveform.
    attention_implementation: "auto", "xla" or "cudnn": the attention
      kernel (`mmjax.models.layers.attention_implementation`).
    remat: "none", "full" or "dots": rematerialisation of each Transformer
      layer (`mmjax.models.layers.remat`); parameters are unchanged.
  """
  hidden_dim: int = 128
  num_layers: int = 4
  num_heads: int = 4
  mlp_dim: int = 256
  dropout_rate: float = 0.0
  patch_size: Tuple[int, int] = (8, 8)
  pool: Pool = "none"
  positional_embedding: PositionalEmbedding = "learned"
  patch_stride: Tuple[int, ...] = ()
  patch_order: PatchOrder = "time_major"
  distillation_token: bool = False
  layer_norm_epsilon: float = 1e-6
  activation: Activation = "gelu_tanh"
  input_features: bool = False
  attention_implementation: str = "auto"
  remat: str = "none"

  @classmethod
  def tiny(cls) -> Dict[str, Any]:
    """{attribute: value} overrides that make the encoder small and fast,
    for tests (`tests/models/test_encoder_contract.py`)."""
    return {"hidden_dim": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64,
            "frontend": {"n_mels": 16}}

  def frontend_features(self, waveform: jnp.ndarray) -> jnp.ndarray:
    """`SpectrogramEncoder.frontend_features`, AST's for "ast_fbank", or the
    input itself with `input_features`.

    Args:
      waveform: float32 `[batch, samples]`; with `input_features`, features
        `[batch, frames, n_features]`.

    Returns:
      `[batch, frames, n_features]` in the input's dtype.

    Raises:
      ValueError: for "ast_fbank" with a key `ast_features` does not take,
        or as `ast_features`; with `input_features`, for input that is not
        rank 3.
    """
    if self.input_features:
      if waveform.ndim != 3:
        raise ValueError(
            "spectrogram_transformer with input_features=True takes features "
            f"[batch, frames, n_features], got shape {tuple(waveform.shape)}")
      return waveform
    frontend = dict(self.frontend or {})
    if frontend.get("features") != "ast_fbank":
      return super().frontend_features(waveform)
    del frontend["features"]
    unknown = sorted(set(frontend) - set(AST_FBANK_KEYS))
    if unknown:
      raise ValueError(f"spectrogram_transformer: frontend {unknown} are not "
                       f"options of the 'ast_fbank' front end (it takes "
                       f"{AST_FBANK_KEYS})")
    return ast_features(waveform, **frontend).astype(waveform.dtype)

  @nn.compact
  def __call__(self, inputs: jnp.ndarray, *,
               train: bool) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Encodes waveforms (or, with `input_features`, features).

    Args:
      inputs: float32 waveforms `[batch, samples]` in [-1, 1] at the front
        end's sample rate; with `input_features`, features `[batch, frames,
        n_features]`.
      train: applies SpecAugment when a mask count is > 0 (needs an
        "augment" rng) and enables dropout.

    Returns:
      (tokens float32 `[batch, P, hidden_dim]` for pool "none", `[batch,
      1, hidden_dim]` for "cls" and "mean", `[batch, prefix + P,
      hidden_dim]` for "all" (prefix: CLS and distillation tokens); token
      mask bool `[batch, tokens]`, all True). With (pt, pf) = patch_size and
      (st, sf) = patch_stride, P = ceil(frames / pt) * (n_features / pf)
      without overlap and ((frames - pt) // st + 1) * ((n_features - pf) //
      sf + 1) with it; frames = 1 + samples // hop_length for "log_mel" and
      "mfcc", max_length for "ast_fbank"; n_features = n_mels, n_mfcc or
      num_mel_bins.

    Raises:
      ValueError: for non-overlapping patches, if the feature count is not
        divisible by the frequency patch size; for overlapping ones, if the
        features are smaller than a patch; for an unknown `pool` or
        `patch_order`, a `patch_stride` that is not a pair, inputs of the
        wrong rank, or a distillation token without a CLS token.
    """
    if self.patch_order not in PATCH_ORDERS:
      raise ValueError(f"spectrogram_transformer: patch_order must be one of "
                       f"{PATCH_ORDERS}, got {self.patch_order!r}")
    spec = self.spectrogram(inputs, train=train)
    patch = tuple(self.patch_size)
    stride = tuple(self.patch_stride) or patch
    if len(stride) != 2:
      raise ValueError(f"spectrogram_transformer: patch_stride must be () or "
                       f"(frames, bins), got {self.patch_stride!r}")
    frames, bins = spec.shape[1:]
    if stride == patch:
      if bins % patch[1]:
        raise ValueError(
            f"spectrogram_transformer: {self._feature_count_name()}={bins} is "
            f"not divisible by the frequency patch size {patch[1]} "
            f"(patch_size={patch}, in (time, freq))")
      spec = jnp.pad(spec, ((0, 0), (0, -frames % patch[0]), (0, 0)))
    elif frames < patch[0] or bins < patch[1]:
      raise ValueError(
          f"spectrogram_transformer: features of {frames} frames x {bins} "
          f"bins ({self._feature_count_name()}) are smaller than one patch "
          f"(patch_size={patch}, in (time, freq))")
    grid = spec[..., None]
    if self.patch_order == "frequency_major":
      grid = grid.transpose(0, 2, 1, 3)
      patch, stride = patch[::-1], stride[::-1]
    tokens = PatchTransformer(
        patch_size=patch, hidden_dim=self.hidden_dim,
        num_layers=self.num_layers, num_heads=self.num_heads,
        mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate, pool=self.pool,
        positional_embedding=self.positional_embedding, patch_stride=stride,
        distillation_token=self.distillation_token,
        layer_norm_epsilon=self.layer_norm_epsilon, activation=self.activation,
        attention_implementation=self.attention_implementation,
        remat=self.remat,
        name="transformer")(grid, train=train)
    return tokens, jnp.ones(tokens.shape[:2], bool)

  def _feature_count_name(self) -> str:
    """The front-end option that sets the feature count, for messages."""
    if self.input_features:
      return "n_features"
    features = dict(self.frontend or {}).get("features", AudioFrontEnd.features)
    return {"mfcc": "n_mfcc", "ast_fbank": "num_mel_bins"}.get(features,
                                                               "n_mels")
