"""The train_state: step, parameters and optimizer state."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from jax.sharding import NamedSharding


class TrainState(train_state.TrainState):
  """`flax.training.train_state.TrainState` (step, params, opt_state, tx)."""


def create_train_state(model: nn.Module, example_batch, tx: optax.GradientTransformation,
                       seed: int, sharding: NamedSharding) -> TrainState:
  """Initialises parameters from `seed` and places the state with `sharding`.

  Args:
    model: the Flax model; `model.init(rng, inputs, train=False)`.
    example_batch: `{modality: [batch, ...]}` arrays or
      `jax.ShapeDtypeStruct`s (only shapes and dtypes are used).
    tx: the optax optimizer.
    seed: parameter-initialisation seed.
    sharding: where the state lives (replicated for data parallelism).
  """
  def init():
    inputs = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), example_batch)
    params = model.init(jax.random.key(seed), inputs, train=False)
    return TrainState.create(apply_fn=model.apply, params=params["params"],
                             tx=tx)
  abstract = jax.eval_shape(init)
  shardings = jax.tree.map(lambda _: sharding, abstract)
  return jax.jit(init, out_shardings=shardings)()

