"""The train_state: step, parameters, optimizer state and model statistics."""

from typing import Any, Callable, Dict, Union

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from jax.sharding import NamedSharding


class TrainState(train_state.TrainState):
  """`flax.training.train_state.TrainState` plus `batch_stats`.

  `batch_stats` holds the model's non-trained variables (BatchNorm running
  statistics), `{}` for models without them; it is checkpointed with the
  rest of the state.
  """
  batch_stats: Any = flax.struct.field(default_factory=dict)

  def variables(self, params=None) -> Dict[str, Any]:
    """The Flax variables for `apply_fn`: params (default: the state's) and
    batch_stats when the model has them."""
    variables = {"params": self.params if params is None else params}
    if self.batch_stats:
      variables["batch_stats"] = self.batch_stats
    return variables


def create_train_state(model: nn.Module, example_batch, tx: optax.GradientTransformation,
                       seed: int,
                       sharding: Union[NamedSharding, Callable[[Any], Any]]
                       ) -> TrainState:
  """Initialises parameters from `seed` and places the state with `sharding`.

  Args:
    model: the Flax model; `model.init(rng, inputs, train=False)`.
    example_batch: `{modality: [batch, ...]}` arrays or
      `jax.ShapeDtypeStruct`s (only shapes and dtypes are used).
    tx: the optax optimizer.
    seed: parameter-initialisation seed.
    sharding: where the state lives: one sharding for every leaf
      (replicated for data parallelism), or a function of the abstract
      state returning a sharding per leaf (`mmjax.sharding.state_shardings`).
  """
  def init():
    inputs = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), example_batch)
    variables = model.init(jax.random.key(seed), inputs, train=False)
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables.get("batch_stats", {}),
                             tx=tx)
  abstract = jax.eval_shape(init)
  shardings = (sharding(abstract) if callable(sharding)
               else jax.tree.map(lambda _: sharding, abstract))
  return jax.jit(init, out_shardings=shardings)()
