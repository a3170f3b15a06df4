"""mmjax.sharding: which dimension of each train_state leaf goes on `fsdp`."""

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import AbstractMesh, PartitionSpec as P

from mmjax import parallel, sharding

MESH = AbstractMesh((2, 4), ("data", "fsdp"))


def config(**kw):
  c = sharding.sharding_config()
  c.update(kw)
  return c


def test_largest_divisible_dimension_goes_on_fsdp():
  c = config(min_size=0)
  assert sharding.leaf_spec("params/Dense_0/kernel", (6, 8), MESH, c) == P(None, "fsdp")
  assert sharding.leaf_spec("params/Conv_0/kernel", (3, 3, 16, 32), MESH, c) == P(
      None, None, None, "fsdp")
  assert sharding.leaf_spec("params/Dense_0/bias", (10,), MESH, c) == P()  # 10 % 4
  assert sharding.leaf_spec("opt_state/count", (), MESH, c) == P()
  # Small leaves stay replicated.
  assert sharding.leaf_spec("params/Dense_0/kernel", (6, 8), MESH,
                            config(min_size=49)) == P()
  # A 1-D mesh replicates everything.
  assert sharding.leaf_spec("params/Dense_0/kernel", (64, 64),
                            AbstractMesh((8,), ("data",)), c) == P()


def test_rules_give_logical_axis_names():
  c = config(rules=(("Dense_0/kernel", ("embed", "mlp")),),
             logical_axis_rules=(("embed", "fsdp"), ("mlp", None)))
  # The rule wins over the largest-dimension default, for the parameter and
  # its optimizer moments (same path suffix).
  for path in ("params/Dense_0/kernel", "opt_state/1/0/mu/Dense_0/kernel"):
    assert sharding.leaf_spec(path, (8, 64), MESH, c) == P("fsdp", None)
  with pytest.raises(ValueError, match="2 logical axis names .* shape \\(8,\\)"):
    sharding.leaf_spec("params/Dense_0/kernel", (8,), MESH, c)
  with pytest.raises(ValueError, match="dimension of 6 .* axis of size 4"):
    sharding.leaf_spec("params/Dense_0/kernel", (6, 64), MESH, c)


def test_state_shardings_cover_the_tree():
  mesh = parallel.make_mesh(1)
  tree = {"params": {"w": jax.ShapeDtypeStruct((4, 8), np.float32)},
          "step": jax.ShapeDtypeStruct((), np.int32)}
  shardings = sharding.state_shardings(tree, mesh, config(min_size=0))
  assert jax.tree.structure(shardings) == jax.tree.structure(tree)
  assert all(s.spec == P() for s in jax.tree.leaves(shardings))
