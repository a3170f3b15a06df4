"""mmjax.data.pp.builder: parsing a spec into a chain of ops."""

import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from mmjax.data.pp import builder

SEED = tf.constant([1, 2], tf.int64)


def run(spec, x, seed=SEED):
  return builder.parse(spec)(tf.constant(x), seed).numpy()


def test_chain_applies_left_to_right():
  out = run("value_range(0, 1)|normalize(0.5, 0.5)",
            np.array([[[0]], [[255]]], np.uint8))
  np.testing.assert_allclose(out.ravel(), [-1.0, 1.0])


def test_empty_spec_is_identity():
  np.testing.assert_array_equal(run("", np.array([1, 2], np.int16)), [1, 2])


@pytest.mark.parametrize("spec, message", [
    ("nope(1)", "unknown preprocessing op 'nope'"),
    ("pad_or_crop(", "cannot parse"),
    ("pad_or_crop(x)", "must be Python literals"),
    ("pad_or_crop(1, 2, 3)", "bad arguments"),
    ("pad_or_crop(8, mode='left')", "start|center|random"),
])
def test_bad_specs_raise_clear_errors(spec, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("|", r"\|")):
    builder.parse(spec)


def test_every_op_is_known_after_importing_only_the_builder():
  # A fresh interpreter: here other tests may already have imported the op
  # modules. No op module may be imported before the first lookup (nothing
  # relies on a side-effect import), and the lookup finds every one.
  code = textwrap.dedent("""
      import sys
      from mmjax.data.pp import builder
      ops = [m for m in sys.modules if m.startswith("mmjax.data.pp.")]
      assert sorted(ops) == ["mmjax.data.pp.builder",
                             "mmjax.data.pp.registry"], ops
      builder.parse("select_text('fr')|video_resize(8)|pad_to(4)")
      names = builder.OPS.names()
      for name in ("value_range", "resize", "to_float", "random_text",
                   "sample_clip", "tokenize", "hf_image_preprocess"):
        assert name in names, (name, names)
  """)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=300,
                       cwd=pathlib.Path(__file__).resolve().parents[3])
  assert out.returncode == 0, out.stderr[-2000:]
