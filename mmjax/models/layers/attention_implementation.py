"""Which kernel runs `jax.nn.dot_product_attention`: XLA's or cuDNN's fused
(flash) attention, chosen per call at trace time.

The config key `attention_implementation` of every attention block and
encoder takes:
  "auto" (the default; None means the same): "cudnn" where every constraint
    below holds, else "xla".
  "xla": XLA's attention (einsums and a softmax), on every backend.
  "cudnn": cuDNN's fused kernel; a ValueError when a constraint fails.
Configs spell the automatic choice "auto", not None: ml_collections cannot
override a None-valued key from the command line.

cuDNN's constraints, from jax 0.10.2
(`jax/_src/cudnn/fused_attention_stablehlo.py`: `check_layout`,
`check_is_flash_attention`, `combine_bias_and_mask`):
  - the backend is an NVIDIA GPU ("gpu"; cuDNN is absent elsewhere);
  - query, key and value are all bfloat16 or all float16 (`config.dtype`);
  - the head dim is a multiple of 8 and at most 128 (256 on Hopper and later;
    mmjax keeps 128 so that the choice does not depend on the GPU model);
  - a key mask reaches cuDNN as an additive bias, which must span the full
    `[T, S]` (so mmjax broadcasts it to `[B, 1, T, S]`), and a bias in a
    differentiated call needs even T and S. Attention without a key mask
    (`key_mask=None`: every key valid, as in ViT, AST and Whisper) has no
    such constraint.
"""

from typing import Optional, Tuple

import jax.numpy as jnp

from mmjax.models.layers import backend

IMPLEMENTATIONS = ("auto", "xla", "cudnn")
CUDNN_DTYPES = (jnp.bfloat16, jnp.float16)
CUDNN_MAX_HEAD_DIM = 128


def check_name(implementation: Optional[str]) -> str:
  """`implementation` ("auto" for None), checked.

  Raises:
    ValueError: for a value outside `IMPLEMENTATIONS` and None, naming the
      key `attention_implementation` and the allowed values.
  """
  if implementation is None:
    return "auto"
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"attention_implementation must be one of "
                     f"{IMPLEMENTATIONS} (None: 'auto'), got "
                     f"{implementation!r}")
  return implementation


def cudnn_unsupported(query_shape: Tuple[int, ...], key_shape: Tuple[int, ...],
                      dtypes, masked: bool) -> Optional[str]:
  """Why cuDNN's fused attention cannot run a call, or None when it can.

  Args:
    query_shape: `[B, T, N, H]`; key_shape: `[B, S, N, H]`.
    dtypes: the dtypes of query, key and value.
    masked: the call has a key mask (passed to cuDNN as a bias).
  """
  name = backend.platform()
  if name != "gpu":
    return f"the backend is {name!r}; cuDNN runs only on NVIDIA GPUs ('gpu')"
  dtypes = {jnp.dtype(d) for d in dtypes}
  if len(dtypes) != 1 or next(iter(dtypes)) not in map(jnp.dtype,
                                                       CUDNN_DTYPES):
    return (f"query, key and value are {sorted(map(str, dtypes))}; cuDNN "
            f"takes bfloat16 or float16 (config.dtype='bfloat16')")
  head_dim = query_shape[-1]
  if head_dim > CUDNN_MAX_HEAD_DIM or head_dim % 8:
    return (f"the head dim is {head_dim}; cuDNN needs a multiple of 8 of at "
            f"most {CUDNN_MAX_HEAD_DIM}")
  t, s = query_shape[1], key_shape[1]
  if masked and (t % 2 or s % 2):
    return (f"with a key mask (a bias for cuDNN) cuDNN's gradient needs even "
            f"query and key lengths, got {t} queries and {s} keys")
  return None


def choose(implementation: Optional[str], query_shape: Tuple[int, ...],
           key_shape: Tuple[int, ...], dtypes, masked: bool) -> str:
  """The kernel ("xla" or "cudnn") for one attention call.

  Args:
    implementation: "auto" or None, "xla" or "cudnn".
    query_shape, key_shape, dtypes, masked: as in `cudnn_unsupported`.

  Raises:
    ValueError: for an unknown value, or "cudnn" where a constraint fails
      (naming `attention_implementation`, the value and the reason).
  """
  implementation = check_name(implementation)
  if implementation == "xla":
    return "xla"
  reason = cudnn_unsupported(query_shape, key_shape, dtypes, masked)
  if implementation == "auto":
    return "xla" if reason else "cudnn"
  if reason:
    raise ValueError(f"attention_implementation='cudnn' cannot apply: "
                     f"{reason}. Use 'auto' (cuDNN where it applies) or "
                     f"'xla'.")
  return "cudnn"
