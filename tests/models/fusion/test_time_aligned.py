import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.fusion.time_aligned import (TimeAlignedFusion, time_grid,
                                              uniform_times, window_assignment)


def test_window_assignment_is_nearest_step_and_fills_empty_steps():
  grid = np.array([0.125, 0.375, 0.625, 0.875])
  # Tokens near steps 0, 0, 1 and 3; step 2 has none, its nearest token is 2.
  times = np.array([0.0, 0.2, 0.3, 0.9])
  expected = np.zeros((4, 4), np.float32)
  for token, step in enumerate([0, 0, 1, 3]):
    expected[step, token] = 1.0
  nearest_to_step_2 = np.argmin(np.abs(times - grid[2]))
  expected[2, nearest_to_step_2] = 1.0
  np.testing.assert_array_equal(window_assignment(grid, times), expected)


def test_window_assignment_of_a_finer_stream_covers_every_token_once():
  grid = (np.arange(8) + 0.5) * 0.25  # video at 4 frames/s over 2 s
  audio = (np.arange(15) + 0.5) * 0.128  # 15 audio tokens of 128 ms
  w = window_assignment(grid, audio)
  np.testing.assert_array_equal(w.sum(axis=0), np.ones(15))
  assert (w.sum(axis=1) >= 1).all()
  steps = w.argmax(axis=0)
  np.testing.assert_array_equal(steps, np.abs(audio[:, None] - grid).argmin(1))


def test_uniform_times():
  np.testing.assert_allclose(uniform_times(4), [0.125, 0.375, 0.625, 0.875])


def _block_and_inputs(positional_embedding="learned"):
  block = TimeAlignedFusion(num_classes=2, dim=8, num_layers=1, num_heads=2,
                            mlp_dim=16, positional_embedding=positional_embedding)
  tokens = {"video": jax.random.normal(jax.random.key(0), (2, 4, 5)),
            "audio": jax.random.normal(jax.random.key(1), (2, 8, 3))}
  masks = {m: jnp.ones(t.shape[:2], bool) for m, t in tokens.items()}
  present = {m: jnp.ones(2) for m in tokens}
  times = {"video": (np.arange(4) + 0.5) * 0.5,
           "audio": (np.arange(8) + 0.5) * 0.25}
  return block, tokens, masks, present, times


def test_grid_is_the_coarsest_stream_and_sown():
  block, tokens, masks, present, times = _block_and_inputs("time")
  variables = block.init(jax.random.key(2), tokens, masks, present,
                         train=False, token_times=times)
  _, state = block.apply(variables, tokens, masks, present, train=False,
                         token_times=times, mutable=["intermediates"])
  assert state["intermediates"]["step_mask"][0].shape == (2, 4)
  with pytest.raises(ValueError, match="reference='text'"):
    TimeAlignedFusion(num_classes=2, reference="text").init(
        jax.random.key(0), tokens, masks, present, train=False)


def test_token_times_decide_which_moments_are_compared():
  """Audio tokens moved to other times change the output; the same audio
  permuted together with its times does not (pooling is by time, not by
  position in the sequence)."""
  block, tokens, masks, present, times = _block_and_inputs("time")
  variables = block.init(jax.random.key(2), tokens, masks, present,
                         train=False, token_times=times)

  def apply(tokens, times):
    return block.apply(variables, tokens, masks, present, train=False,
                       token_times=times).embedding

  reference = apply(tokens, times)
  order = np.random.default_rng(0).permutation(8)
  permuted = dict(tokens, audio=tokens["audio"][:, order])
  np.testing.assert_allclose(
      apply(permuted, dict(times, audio=times["audio"][order])), reference,
      atol=1e-5)
  assert not np.allclose(apply(permuted, times), reference, atol=1e-4)


def test_time_grid_steps_hold_every_token():
  times = {"video": (np.arange(8) + 0.5) * 0.25,
           "audio": (np.arange(15) + 0.5) * 0.128}
  grid = time_grid(times, 0.5)
  np.testing.assert_allclose(grid, [0.25, 0.75, 1.25, 1.75])
  # Each token falls in the step [k, k + 1) * 0.5 s that contains it.
  w = window_assignment(grid, times["audio"])
  np.testing.assert_array_equal(w.argmax(axis=0),
                                np.floor(times["audio"] / 0.5).astype(int))
  with pytest.raises(ValueError, match="token_times"):
    time_grid({}, 0.5)
