"""docs/write_your_own_pp_op.md, followed as a new user would.

The example is read from the page and saved into a copy of the repository
as `mmjax/data/pp/time_shift.py`; the page's own `launch.py` command, which
names the op in `pp_train.audio`, trains there for a few steps of the tiny
av_digits settings on the real data, and the op is checked in that copy
(a subprocess), found by name through the spec parser as training finds it.
"""

import json
import subprocess
import sys

import pytest

from tests import user_copy as user

PAGE = user.REPO_ROOT / "docs" / "write_your_own_pp_op.md"
FILE = "mmjax/data/pp/time_shift.py"
MAX_SHIFT = 800

# Run in the copy: the op through `pp.builder.parse`, as the pipeline builds
# it. Prints, per seed, the shift that turns the input into the output
# (None if no zero-filled shift within MAX_SHIFT does), and what else the
# test checks.
BEHAVIOUR = f"""
import json
import numpy as np
import tensorflow as tf
from mmjax.data.pp import builder

MAX_SHIFT = {MAX_SHIFT}


def shifted(x, k):
  out = np.zeros_like(x)
  if k >= 0:
    out[k:] = x[:len(x) - k]
  else:
    out[:k] = x[-k:]
  return out


def shift_of(x, y):
  found = [k for k in range(-MAX_SHIFT, MAX_SHIFT + 1)
           if np.array_equal(y, shifted(x, k))]
  return found[0] if len(found) == 1 else None


op = builder.parse(f"random_time_shift({{MAX_SHIFT}})")
x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
out = {{"shifts": [], "repeatable": True}}
for s in range(10):
  seed = tf.constant([s, 7], tf.int64)
  y = op(tf.constant(x), seed)
  out["repeatable"] &= bool(np.array_equal(y, op(tf.constant(x), seed)))
  out["shifts"].append(shift_of(x, y.numpy()))
out["float_shape"] = list(y.shape)
out["float_dtype"] = y.dtype.name
pcm = tf.constant((x * 3000).astype(np.int16))
out["int16_dtype"] = op(pcm, tf.constant([0, 1], tf.int64)).dtype.name
static = tf.function(lambda v: op(v, tf.constant([0, 1], tf.int64)))
out["static_shape"] = static.get_concrete_function(
    tf.TensorSpec([8000], tf.float32)).structured_outputs.shape.as_list()
identity = builder.parse("random_time_shift(0)")(tf.constant(x),
                                                 tf.constant([3, 4], tf.int64))
out["zero_is_identity"] = bool(np.array_equal(identity, x))
try:
  builder.parse("random_time_shift(-1)")
  out["negative"] = "accepted"
except ValueError as e:
  out["negative"] = str(e)
print(json.dumps(out))
"""


def example_code():
  return user.only_python_block(PAGE)


@pytest.fixture(scope="module")
def user_copy(tmp_path_factory):
  """The repository plus the example, saved where the page says."""
  return user.copy_with_saved_files(tmp_path_factory, PAGE,
                                    {FILE: example_code()})


def test_example_trains_through_launch(user_copy, prepared_data_dir,
                                       real_manual_dir, tmp_path):
  command = user.launch_command(PAGE)
  (spec,) = [a.split("=", 1)[1] for a in command
             if a.startswith("--config.pp_train.audio=")]
  assert f"random_time_shift({MAX_SHIFT})" in spec.split("|"), spec
  workdir = tmp_path / "shifted"
  proc = user.run_launch(user_copy, command, workdir, user.short_run_overrides(
      real_manual_dir, prepared_data_dir))
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = json.loads((workdir / "config.json").read_text())
  assert config["pp_train"]["audio"] == spec
  results = json.loads((workdir / "results.json").read_text())
  assert 0.0 <= results["validation"]["accuracy"] <= 1.0
  assert (workdir / "checkpoints" / "4").is_dir()


def test_example_op_behaves_as_the_page_says(user_copy):
  proc = subprocess.run([sys.executable, "-c", BEHAVIOUR], cwd=user_copy,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["repeatable"], "the same seed gave another output"
  assert None not in out["shifts"], (
      f"an output is not its input shifted with zeros: {out['shifts']}")
  assert len(set(out["shifts"])) >= 5, f"too few shifts: {out['shifts']}"
  assert out["float_shape"] == [8000] and out["float_dtype"] == "float32"
  assert out["int16_dtype"] == "int16"
  assert out["static_shape"] == [8000], out["static_shape"]
  assert out["zero_is_identity"]
  assert "max_samples must be >= 0" in out["negative"], out["negative"]
