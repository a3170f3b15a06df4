"""The registered encoders and fusion blocks that have a given attribute,
built at their `tiny()` settings with test inputs, for the tests of the
keys every attention stack shares (`attention_implementation`, `remat`).

A newly registered entry with the attribute is covered with no new test code.
"""

import dataclasses

import jax
import jax.numpy as jnp

from mmjax.models.registries import (ENCODERS, FUSION, build_encoder,
                                     module_config)
from tests.models.test_encoder_contract import encoder_input

# Two modalities of different widths and token counts, example 1 padded.
FUSION_TOKENS = {"audio": jnp.ones((2, 4, 8)), "image": jnp.ones((2, 6, 6))}
FUSION_MASKS = {"audio": jnp.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool),
                "image": jnp.ones((2, 6), bool)}
FUSION_PRESENT = {"audio": jnp.ones(2), "image": jnp.ones(2)}
FUSION_TIMES = {"audio": jnp.arange(4) * 0.5, "image": jnp.arange(6) * 0.3}


def entries(attribute):
  """`("encoder" | "fusion", name)` of every registered entry that has the
  dataclass field `attribute`."""
  out = []
  for kind, registry in (("encoder", ENCODERS), ("fusion", FUSION)):
    for name in registry.names():
      fields = {f.name for f in dataclasses.fields(registry.get(name))}
      if attribute in fields:
        out.append((kind, name))
  return out


def entry_id(entry):
  return f"{entry[0]}:{entry[1]}"


def init_and_apply(entry, **attributes):
  """`(init(rng), apply(variables, train))` of the entry at its `tiny()`
  settings with `attributes`, on the test inputs; built as a config builds
  it (`module_config`)."""
  kind, name = entry
  if kind == "encoder":
    cls = ENCODERS.get(name)
    module = build_encoder(module_config(ENCODERS, name,
                                         **{**cls.tiny(), **attributes}))
    x = encoder_input(cls)
    init = lambda rng: module.init(rng, x, train=False)

    def apply(variables, train):
      return module.apply(variables, x, train=train,
                          rngs={"dropout": jax.random.key(1),
                                "augment": jax.random.key(2)})[0]
    return init, apply
  cls = FUSION.get(name)
  module = cls(num_classes=3, **{**cls.tiny(), **attributes})
  args = (FUSION_TOKENS, FUSION_MASKS, FUSION_PRESENT)
  times = {m: jax.device_get(t) for m, t in FUSION_TIMES.items()}
  init = lambda rng: module.init(rng, *args, train=False, token_times=times)

  def apply(variables, train):
    return module.apply(variables, *args, train=train, token_times=times,
                        rngs={"dropout": jax.random.key(1)}).embedding
  return init, apply
