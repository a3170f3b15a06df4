"""mmjax.compilation_cache: a program holding the batch-partitioned rfft
(every spectrogram front end) is compiled once across processes."""

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

# Compiles a jitted rfft on a 2-device mesh, sharded along the batch (the
# custom_partitioning op is kept in the program), into the cache at argv[1].
SCRIPT = r"""
import sys
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from mmjax import compilation_cache
from mmjax.models.layers import fft
compilation_cache.enable(sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
mesh = Mesh(np.array(jax.devices()[:2]), ("data",))
x = jax.device_put(jnp.ones((4, 16)), NamedSharding(mesh, PartitionSpec("data")))
jax.jit(lambda x: jnp.abs(fft.rfft(x)), out_shardings=NamedSharding(
    mesh, PartitionSpec("data")))(x).block_until_ready()
"""


def test_a_program_with_the_partitioned_rfft_hits_in_another_process(
    tmp_path):
  # JAX keys such a program by the address of the partitioning callback,
  # different in every process, unless compilation_cache.enable says not to.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  for _ in range(2):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)],
                          cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
  programs = [p.name for p in tmp_path.iterdir() if p.name.startswith(
      "jit__lambda")]
  assert len(programs) == 1, programs
