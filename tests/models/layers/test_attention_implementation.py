"""`attention_implementation`: the per-call choice of XLA's or cuDNN's
attention kernel, and the key's path from a config to every attention call.

The backend is pretended by monkeypatching
`mmjax.models.layers.backend.platform`; cuDNN's kernel itself never runs here
(there is none on a CPU): the calls that choose it are recorded and run
with XLA's. A GPU test of the two kernels' agreement belongs in tests/gpu.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models.layers import attention
from mmjax.models.layers import attention_implementation as impl
from mmjax.models.layers import backend
from tests.models.stack_entries import entries, entry_id, init_and_apply

BF16, F32 = jnp.bfloat16, jnp.float32
Q = (2, 6, 2, 16)  # [B, T, N, H]
K = (2, 4, 2, 16)  # [B, S, N, H]


@pytest.fixture
def on_backend(monkeypatch):
  def pretend(name):
    monkeypatch.setattr(backend, "platform", lambda: name)
  return pretend


def choose(name, q=Q, k=K, dtype=BF16, masked=True):
  return impl.choose(name, q, k, (dtype,) * 3, masked)


def test_auto_takes_cudnn_only_where_its_constraints_hold(on_backend):
  on_backend("gpu")
  assert choose("auto") == "cudnn" and choose(None) == "cudnn"
  assert choose("auto", dtype=jnp.float16) == "cudnn"
  assert choose("auto", dtype=F32) == "xla"
  assert impl.choose("auto", Q, K, (BF16, BF16, F32), True) == "xla"
  for head_dim in (12, 136):  # not a multiple of 8; above 128
    shape = Q[:3] + (head_dim,)
    assert choose("auto", shape, shape) == "xla", head_dim
  assert choose("auto", (2, 6, 2, 128), (2, 4, 2, 128)) == "cudnn"
  odd = (2, 5, 2, 16)  # a mask needs even lengths, no mask does not
  assert choose("auto", odd, odd) == "xla"
  assert choose("auto", odd, odd, masked=False) == "cudnn"
  assert choose("xla") == "xla"
  for backend in ("cpu", "tpu", "rocm"):
    on_backend(backend)
    assert choose("auto") == "xla" and choose(None) == "xla"


def test_cudnn_where_it_cannot_apply_and_unknown_names_are_errors(on_backend):
  on_backend("cpu")
  with pytest.raises(ValueError, match=r"attention_implementation='cudnn' "
                     r"cannot apply: the backend is 'cpu'"):
    choose("cudnn")
  on_backend("gpu")
  with pytest.raises(ValueError, match="attention_implementation='cudnn'.*"
                     "float32.*bfloat16 or float16"):
    choose("cudnn", dtype=F32)
  with pytest.raises(ValueError, match="attention_implementation='cudnn'.*"
                     "head dim is 12"):
    choose("cudnn", Q[:3] + (12,), K[:3] + (12,))
  assert choose("cudnn") == "cudnn"
  with pytest.raises(ValueError, match=r"attention_implementation must be one "
                     r"of \('auto', 'xla', 'cudnn'\).*'flash'"):
    choose("flash")


def test_attend_gives_cudnn_a_full_mask_and_xla_the_key_mask(on_backend,
                                                             monkeypatch):
  """The chosen kernel reaches `jax.nn.dot_product_attention` with the mask
  form it accepts (cuDNN: `[B, 1, T, S]`; no mask when every key is valid),
  and the output is the XLA path's."""
  calls = []
  xla_attention = jax.nn.dot_product_attention

  def record(q, k, v, mask=None, *, is_causal, implementation):
    calls.append((implementation, None if mask is None else mask.shape))
    return xla_attention(q, k, v, mask=mask, is_causal=is_causal,
                         implementation="xla")
  monkeypatch.setattr(jax.nn, "dot_product_attention", record)
  q, k, v = (jax.random.normal(jax.random.key(i), s, BF16)
             for i, s in enumerate((Q, K, K)))
  key_mask = jnp.array([[1, 1, 1, 0], [1, 0, 0, 0]], bool)
  on_backend("cpu")
  expected = attention.attend(q, k, v, key_mask)
  on_backend("gpu")
  out = attention.attend(q, k, v, key_mask)
  unmasked = attention.attend(q, k, v, None, implementation="cudnn")
  assert calls == [("xla", (2, 1, 1, 4)), ("cudnn", (2, 1, 6, 4)),
                   ("cudnn", None)]
  np.testing.assert_array_equal(np.asarray(out, np.float32),
                                np.asarray(expected, np.float32))
  np.testing.assert_allclose(
      np.asarray(unmasked, np.float32),
      np.asarray(attention.attend(q, k, v, jnp.ones((2, 4), bool)),
                 np.float32), atol=1e-2)


ENTRIES = entries("attention_implementation")


def test_every_attention_encoder_and_fusion_block_has_the_key():
  names = {name for _, name in ENTRIES}
  assert {"vit", "spectrogram_transformer", "text_transformer",
          "whisper_encoder", "frame_encoder", "vivit", "self_attention",
          "cross_attention", "bottleneck", "time_aligned"} <= names


@pytest.mark.parametrize("entry", ENTRIES, ids=entry_id)
def test_the_key_reaches_every_attention_call(entry, monkeypatch):
  """Traced (not compiled): every attention call of the entry asks for the
  configured implementation."""
  asked = []
  choose_kernel = impl.choose

  def record(implementation, *args):
    asked.append(implementation)
    return choose_kernel("xla", *args)
  monkeypatch.setattr(impl, "choose", record)
  init, _ = init_and_apply(entry, attention_implementation="cudnn")
  jax.eval_shape(init, jax.random.key(0))
  assert asked and set(asked) == {"cudnn"}, asked
