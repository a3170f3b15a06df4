"""Checkpoints written before the `FusionBlock` base (issue 27) still restore:
every block keeps its parameter names and shapes.

`param_trees_before_issue_27.json` was written by the code of commit a14d128
(the last one before the change) with the script in this file's
`record_trees` (three modalities: audio 3 x 8, image 5 x 6, text 4 x 10
tokens x width; default attributes and the enumerated variants below). An
Orbax checkpoint restores into the model exactly when these trees match.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import pytest

from mmjax.models.registries import FUSION

RECORDED = json.loads((pathlib.Path(__file__).parent
                       / "param_trees_before_issue_27.json").read_text())
SHAPES = {"audio": (3, 8), "image": (5, 6), "text": (4, 10)}


def record_trees(name, attributes):
  """`{"path/to/param": shape}` of a block's parameters."""
  tokens = {m: jnp.zeros((4, n, d)) for m, (n, d) in SHAPES.items()}
  masks = {m: jnp.ones((4, n), bool) for m, (n, _) in SHAPES.items()}
  present = {m: jnp.ones(4) for m in SHAPES}
  block = FUSION.get(name)(num_classes=3, **attributes)
  shapes = jax.eval_shape(lambda: block.init(
      jax.random.key(0), tokens, masks, present, train=False))
  flat = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
  return {"/".join(p.key for p in path): list(leaf.shape)
          for path, leaf in flat}


def parse(key):
  name, *attributes = key.split(",")
  values = {"True": True, "False": False}
  return name, {k: values.get(v, v) for k, v in
                (a.split("=", 1) for a in attributes)}


def test_every_block_was_recorded():
  assert {parse(k)[0] for k in RECORDED} == set(FUSION.names())


@pytest.mark.parametrize("key", sorted(RECORDED))
def test_parameter_names_and_shapes_are_unchanged(key):
  name, attributes = parse(key)
  assert record_trees(name, attributes) == RECORDED[key]
