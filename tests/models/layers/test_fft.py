"""mmjax.models.layers.fft.rfft: jnp.fft.rfft's values, the batch's sharding."""

import json
import os
from pathlib import Path
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.models.layers import fft
from tests.conftest import xla_flags

REPO_ROOT = Path(__file__).resolve().parents[3]
X = np.random.default_rng(0).standard_normal((4, 6, 32)).astype(np.float32)


def test_values_vmap_and_gradient_equal_jnp_rfft():
  np.testing.assert_array_equal(fft.rfft(X), jnp.fft.rfft(X))
  np.testing.assert_array_equal(jax.jit(fft.rfft)(X), jnp.fft.rfft(X))
  np.testing.assert_array_equal(
      jax.vmap(fft.rfft, in_axes=1, out_axes=1)(X), jnp.fft.rfft(X))
  weights = jnp.arange(17.0)
  loss = lambda f: lambda x: jnp.sum(jnp.abs(f(x)) ** 2 * weights)
  np.testing.assert_allclose(jax.grad(loss(fft.rfft))(X),
                             jax.grad(loss(jnp.fft.rfft))(X), rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(jax.grad(loss(fft.rfft)))(X),
                             jax.vmap(jax.grad(loss(jnp.fft.rfft)))(X),
                             rtol=1e-6)


# On 8 CPU devices: each device transforms its own shard of the batch (no
# all-gather, FFT on [per-device batch, ...]); jnp.fft.rfft is checked too,
# so the test notices when XLA starts partitioning FFTs itself.
SCRIPT = """
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from mmjax.models.layers import fft
mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "fsdp"))
x = np.random.default_rng(0).standard_normal((16, 6, 32)).astype(np.float32)
out = {}
for name, f in (("mmjax", fft.rfft), ("jnp", jnp.fft.rfft)):
  for spec in (P("data"), P(("data", "fsdp")), P("data", "fsdp")):
    sharded = jax.device_put(x, NamedSharding(mesh, spec))
    power = jax.jit(lambda v: jnp.abs(f(v)) ** 2)
    hlo = power.lower(sharded).compile().as_text()
    y = power(sharded)
    out[f"{name} {spec}"] = {
        "all_gather": "all-gather" in hlo,
        "fft_shapes": [l.split("=")[1].split("fft(")[0].strip()
                       for l in hlo.splitlines() if " fft(" in l],
        "spec": str(y.sharding.spec),
        "max_error": float(np.abs(np.asarray(y) - np.abs(np.fft.rfft(x)) ** 2).max())}
print("RESULT" + json.dumps(out))
"""


def test_sharded_batch_stays_sharded_on_8_devices():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=8"))
  proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  expected = {"P('data',)": ("c64[4,6,17]", "P('data',)"),
              "P(('data', 'fsdp'),)": ("c64[2,6,17]", "P(('data', 'fsdp'),)"),
              "P('data', 'fsdp')": ("c64[4,3,17]", "P('data', 'fsdp')")}
  for spec, (fft_shape, out_spec) in expected.items():
    got = out[f"mmjax {spec}"]
    assert not got["all_gather"], (spec, got)
    assert [s.split("{")[0] for s in got["fft_shapes"]] == [fft_shape], got
    assert got["spec"] == out_spec
    # float32 FFT against numpy's float64: measured 3.8e-5, the same as
    # jnp.fft.rfft's (jax 0.10.2, CPU), on |X|^2 values up to ~300.
    assert got["max_error"] < 2e-4, got
  # What this module works around: XLA gathers the batch for jnp.fft.rfft.
  assert out["jnp P('data',)"]["all_gather"]
