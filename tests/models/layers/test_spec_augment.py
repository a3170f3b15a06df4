import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.layers.spec_augment import spec_augment

MASK = -7.0


def _spec(batch=64, time=20, freq=16):
  # Values in [1, 2) so that no unmasked entry equals MASK.
  return jax.random.uniform(jax.random.key(3), (batch, time, freq)) + 1.0


def _masked_runs(masked_1d):
  """Lengths of the runs of True in a 1-D bool array."""
  padded = np.concatenate([[False], masked_1d, [False]]).astype(int)
  edges = np.flatnonzero(np.diff(padded))
  return edges[1::2] - edges[::2]


@pytest.mark.parametrize("axis", ["freq", "time"])
def test_single_mask_is_one_contiguous_band_within_max_width(axis):
  spec = _spec()
  max_width = 5
  kwargs = dict(num_freq_masks=0, max_freq_width=0, num_time_masks=0,
                max_time_width=0, mask_value=MASK)
  kwargs["num_freq_masks" if axis == "freq" else "num_time_masks"] = 1
  kwargs["max_freq_width" if axis == "freq" else "max_time_width"] = max_width
  out = np.asarray(spec_augment(jax.random.key(0), spec, **kwargs))
  spec = np.asarray(spec)
  masked = out == MASK
  # Outside the mask nothing changes.
  np.testing.assert_array_equal(out[~masked], spec[~masked])
  widths = []
  for example in masked:
    # A frequency mask covers whole columns, a time mask whole rows.
    lines = example.all(axis=0) if axis == "freq" else example.all(axis=1)
    expected = lines[None, :] if axis == "freq" else lines[:, None]
    np.testing.assert_array_equal(example,
                                  np.broadcast_to(expected, example.shape))
    runs = _masked_runs(lines)
    assert len(runs) <= 1
    widths.append(runs[0] if len(runs) else 0)
  assert max(widths) <= max_width
  # Widths are uniform on {0, ..., max_width}: over 64 examples every value
  # shows up.
  assert set(widths) == set(range(max_width + 1))


def test_widths_capped_at_axis_length_and_masks_fit():
  spec = _spec(batch=32, time=6, freq=4)
  out = np.asarray(spec_augment(
      jax.random.key(1), spec, num_freq_masks=1, max_freq_width=50,
      num_time_masks=0, max_time_width=0, mask_value=MASK))
  widths = (out == MASK).all(axis=1).sum(axis=1)
  assert widths.max() <= 4
  assert 4 in widths  # a full-width band happens and still fits


def test_several_masks_mask_at_most_their_total_width():
  spec = _spec()
  out = np.asarray(spec_augment(
      jax.random.key(2), spec, num_freq_masks=2, max_freq_width=3,
      num_time_masks=3, max_time_width=2, mask_value=MASK))
  masked = out == MASK
  freq_masked = masked.all(axis=1)    # [batch, freq]
  time_masked = masked.all(axis=2)    # [batch, time]
  assert freq_masked.sum(axis=1).max() <= 2 * 3
  assert time_masked.sum(axis=1).max() <= 3 * 2
  # Masked entries are exactly the union of the masked rows and columns.
  np.testing.assert_array_equal(
      masked, freq_masked[:, None, :] | time_masked[:, :, None])


def test_examples_get_different_masks():
  spec = jnp.ones((8, 20, 16))
  out = np.asarray(spec_augment(
      jax.random.key(0), spec, num_freq_masks=1, max_freq_width=8,
      num_time_masks=1, max_time_width=8))
  patterns = {out[i].tobytes() for i in range(8)}
  assert len(patterns) > 1


def test_no_masks_is_identity():
  spec = _spec(batch=2)
  for kwargs in (dict(num_freq_masks=0, max_freq_width=8, num_time_masks=0,
                      max_time_width=8),
                 dict(num_freq_masks=3, max_freq_width=0, num_time_masks=3,
                      max_time_width=0)):
    out = spec_augment(jax.random.key(0), spec, **kwargs)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(spec))


def test_deterministic_for_fixed_rng_and_varies_with_rng():
  spec = _spec(batch=4)
  kwargs = dict(num_freq_masks=2, max_freq_width=4, num_time_masks=2,
                max_time_width=4)
  fn = jax.jit(lambda rng, x: spec_augment(rng, x, **kwargs))
  a = fn(jax.random.key(5), spec)
  b = fn(jax.random.key(5), spec)
  c = fn(jax.random.key(6), spec)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))
  assert a.dtype == spec.dtype and a.shape == spec.shape


def test_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r"\[batch, time, freq\]"):
    spec_augment(jax.random.key(0), jnp.ones((4, 5)), num_freq_masks=1,
                 max_freq_width=2, num_time_masks=1, max_time_width=2)
  with pytest.raises(ValueError, match="max_time_width"):
    spec_augment(jax.random.key(0), jnp.ones((1, 4, 5)), num_freq_masks=1,
                 max_freq_width=2, num_time_masks=1, max_time_width=-1)
