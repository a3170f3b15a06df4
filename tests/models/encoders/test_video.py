"""The video encoders (frame_encoder, vivit) on tiny clips: shapes, masks,
token times against a direct computation, padding, errors, configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.encoders.video import FrameEncoder, ViViT
from mmjax.models.registries import (ENCODERS, check_module_config,
                                     module_config, split_options)

TINY_CNN = {"name": "cnn", "features": (4,), "embed_dim": 8}
LENGTHS = (4, 3)  # example 1 has one padded frame


def _clip(num_frames=4, size=8, lengths=LENGTHS, seed=0):
  frames = jax.random.uniform(jax.random.key(seed),
                              (len(lengths), num_frames, size, size, 1))
  mask = jnp.arange(num_frames)[None] < jnp.array(lengths)[:, None]
  return {"frames": frames, "frame_mask": mask}


def _frame_encoder(**kwargs):
  return FrameEncoder(**{"image_encoder": TINY_CNN, "dim": 8, "num_heads": 2,
                         "mlp_dim": 16, **kwargs})


def _vivit(**kwargs):
  return ViViT(**{"patch_size": 4, "tubelet_size": 2, "hidden_dim": 8,
                  "spatial_layers": 1, "temporal_layers": 1, "num_heads": 2,
                  "mlp_dim": 16, **kwargs})


def _init_and_apply(encoder, x, variables=None):
  if variables is None:
    variables = jax.jit(lambda x: encoder.init(jax.random.key(0), x,
                                               train=False))(x)
  tokens, mask = jax.jit(lambda v, x: encoder.apply(v, x, train=False))(
      variables, x)
  return np.asarray(tokens), np.asarray(mask), variables


@pytest.mark.parametrize("temporal, num_tokens",
                         [("mean", 1), ("lstm", 4), ("transformer", 4)])
def test_frame_encoder_shapes_and_mask(temporal, num_tokens):
  tokens, mask, _ = _init_and_apply(_frame_encoder(temporal=temporal), _clip())
  assert tokens.shape == (2, num_tokens, 8) and tokens.dtype == np.float32
  assert mask.dtype == bool
  if temporal == "mean":
    np.testing.assert_array_equal(mask, [[True], [True]])
  else:
    np.testing.assert_array_equal(mask, np.asarray(_clip()["frame_mask"]))
    assert not tokens[1, 3].any()  # the padded frame's token is zero
  assert np.isfinite(tokens).all()


def test_vivit_shapes_and_mask():
  # 6 frames -> 3 tubelets; example 1 has 3 real frames (tubelets 0, 1).
  x = _clip(num_frames=6, lengths=(6, 3))
  for pool in ("cls", "mean"):
    tokens, mask, _ = _init_and_apply(_vivit(spatial_pool=pool), x)
    assert tokens.shape == (2, 3, 8) and tokens.dtype == np.float32
    np.testing.assert_array_equal(mask, [[True] * 3, [True, True, False]])
    assert not tokens[1, 2].any() and np.isfinite(tokens).all()


@pytest.mark.parametrize("make", [_frame_encoder, _vivit])
def test_mixed_precision_runs_in_bfloat16(make):
  """Under the train step's mixed precision (bfloat16 parameters and
  frames) the encoder computes in bfloat16 instead of upcasting the frames."""
  encoder, x = make(), _clip()
  variables = jax.jit(lambda x: encoder.init(jax.random.key(0), x,
                                             train=False))(x)
  cast = lambda t: jax.tree.map(lambda a: a.astype(jnp.bfloat16)  # noqa: E731
                                if jnp.issubdtype(a.dtype, jnp.floating) else a, t)
  tokens, _ = jax.jit(lambda v, x: encoder.apply(v, x, train=False))(
      cast(variables), cast(x))
  assert tokens.dtype == jnp.bfloat16


def test_token_times_are_frame_centres_in_seconds():
  frame_rate = 8.0
  encoder = _frame_encoder(frame_rate=frame_rate)
  np.testing.assert_allclose(encoder.token_times(3),
                             [0.5 / 8, 1.5 / 8, 2.5 / 8])
  assert encoder.token_times(3).dtype == np.float32
  # Tubelet k covers frames 3k, 3k+1, 3k+2: centre (3k + 1.5) / rate.
  times = _vivit(tubelet_size=3, frame_rate=frame_rate).token_times(2)
  np.testing.assert_allclose(times, [1.5 / 8, 4.5 / 8])
  assert times.dtype == np.float32
  np.testing.assert_array_equal(
      _frame_encoder(temporal="mean").token_times(1), [0.0])


@pytest.mark.parametrize("temporal", ["mean", "lstm", "transformer"])
def test_frame_encoder_padding_changes_nothing_at_real_frames(temporal):
  """A clip padded with masked (NaN) frames gives the tokens of the unpadded
  clip at its real frames (sinusoidal positions: any clip length)."""
  encoder = _frame_encoder(temporal=temporal, positional_embedding="sinusoidal")
  short = _clip(num_frames=3, lengths=(3, 2))
  tokens, mask, variables = _init_and_apply(encoder, short)
  padding = jnp.full((2, 2, 8, 8, 1), jnp.nan)
  padded = {"frames": jnp.concatenate([short["frames"], padding], axis=1),
            "frame_mask": jnp.pad(short["frame_mask"], ((0, 0), (0, 2)))}
  padded_tokens, padded_mask, _ = _init_and_apply(encoder, padded, variables)
  width = tokens.shape[1]
  np.testing.assert_array_equal(padded_mask[:, :width], mask)
  np.testing.assert_allclose(padded_tokens[:, :width], tokens, atol=1e-5,
                             rtol=1e-5)
  if temporal != "mean":
    assert not padded_tokens[:, width:].any()


@pytest.mark.parametrize("encoder, x, message", [
    (_vivit(), _clip(num_frames=3, lengths=(3, 3)), "tubelet_size=2"),
    (_vivit(), _clip(size=6), "patch_size=4"),
    (_vivit(), {"frames": _clip()["frames"]}, "no 'frame_mask'"),
    (_frame_encoder(), {"frame_mask": _clip()["frame_mask"]}, "no 'frames'"),
    (_frame_encoder(), _clip()["frames"], "expects"),
    (_vivit(), dict(_clip(), frames=_clip()["frames"][:, 0]), "frames"),
    (_frame_encoder(temporal="gru"), _clip(), "temporal must be one of"),
    (_frame_encoder(temporal="lstm", dim=7), _clip(), "even dim"),
    (_frame_encoder(image_encoder={"name": "lstm"}), _clip(), "image encoder"),
])
def test_errors(encoder, x, message):
  with pytest.raises(ValueError, match=message):
    jax.eval_shape(lambda: encoder.init(jax.random.key(0), x, train=False))


@pytest.mark.parametrize("name, cls", [("frame_encoder", FrameEncoder),
                                       ("vivit", ViViT)])
def test_registered_with_config_from_defaults(name, cls):
  assert ENCODERS.get(name) is cls and cls.modality == "video"
  config = module_config(ENCODERS, name, frame_rate=8.0)
  check_module_config(ENCODERS, config.to_dict(), "config.model.video")
  kwargs, _ = split_options(config.to_dict())
  kwargs.pop("name")
  encoder = cls(**kwargs)
  assert encoder.frame_rate == 8.0
  with pytest.raises(ValueError, match="no attribute"):
    module_config(ENCODERS, name, patch=3)
