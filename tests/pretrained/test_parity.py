"""Parity of every pretrained family with its reference implementation.

For each family registered in `mmjax.pretrained.families.FAMILIES`, a spec
module `tests/pretrained/spec_<family>.py` builds a tiny random model with
`transformers` (PyTorch, CPU), saves it with `save_pretrained`, and gives
the same inputs to it and to the mmjax encoder loaded from that directory.
The issue's bound: maximum absolute difference at most 1e-4 in float32 for
the last hidden states and the pooled outputs.

The mutation tests run the same comparison after swapping the query and key
projections of one attention layer, and after transposing one square kernel
of the loaded parameters: both must break parity, so the parity test can
tell a wrong mapping from a right one.
"""

import importlib
import pathlib

import flax
import jax
import numpy as np
import pytest

from mmjax.pretrained import load as pretrained_load
from mmjax.pretrained.families import FAMILIES
from mmjax.models.registries import ENCODERS, split_options

torch = pytest.importorskip("torch")  # test-only dependency (requirements-test.txt)

PARITY_ATOL = 1e-4
SPEC_DIR = pathlib.Path(__file__).parent
SPECS = {p.stem[len("spec_"):]: importlib.import_module(f"tests.pretrained.{p.stem}")
         for p in sorted(SPEC_DIR.glob("spec_*.py"))}
FAMILY_NAMES = sorted(FAMILIES.names())


def test_every_family_has_a_spec():
  missing = sorted(set(FAMILY_NAMES) - set(SPECS))
  assert not missing, f"families without tests/pretrained/spec_<name>.py: {missing}"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  """`{family: directory}` of tiny saved checkpoints, built on first use."""
  built = {}

  def get(family):
    if family not in built:
      directory = tmp_path_factory.mktemp(f"hf_{family}")
      torch.manual_seed(0)
      SPECS[family].build(directory)
      built[family] = directory
    return built[family]
  return get


def mmjax_outputs(family, directory, mutate=None):
  """`{output: array}` of the mmjax encoder loaded from `directory`."""
  spec = SPECS[family]
  outs = {}
  for output, overrides in spec.OUTPUTS.items():
    config, _ = split_options(pretrained_load.pretrained_encoder_config(
        str(directory), spec.ENCODER, **overrides).to_dict())
    name = config.pop("name")
    encoder = ENCODERS.get(name)(**config)
    x = spec.mmjax_inputs()
    abstract = jax.eval_shape(lambda: encoder.init(jax.random.key(0), x,
                                                   train=False))["params"]
    params = pretrained_load.load_hf_encoder(str(directory),
                                             {"name": name, **config},
                                             abstract, f"spec_{family}")
    if mutate is not None:
      params = mutate(params)
    tokens, mask = encoder.apply({"params": params}, x, train=False)
    outs[output] = spec.select(output, np.asarray(tokens), np.asarray(mask))
  return outs


def max_differences(family, directory, mutate=None):
  reference = SPECS[family].reference(directory)
  mine = mmjax_outputs(family, directory, mutate)
  assert sorted(reference) == sorted(mine)
  out = {}
  for k in reference:
    assert mine[k].shape == reference[k].shape, (k, mine[k].shape, reference[k].shape)
    out[k] = float(np.abs(mine[k] - reference[k]).max())
  return out


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_parity_with_transformers(family, checkpoints):
  diffs = max_differences(family, checkpoints(family))
  assert max(diffs.values()) <= PARITY_ATOL, diffs


def _paths(params):
  return flax.traverse_util.flatten_dict(params, sep="/")


def swap_query_key(params):
  flat = _paths(params)
  query = sorted(p for p in flat if p.endswith("attention/query/kernel"))[0]
  key = query.replace("query/kernel", "key/kernel")
  flat[query], flat[key] = flat[key], flat[query]
  return flax.traverse_util.unflatten_dict(flat, sep="/")


def transpose_square_kernel(params):
  flat = _paths(params)
  square = sorted(p for p, v in flat.items() if p.endswith("kernel")
                  and v.ndim == 2 and v.shape[0] == v.shape[1])
  assert square, "no square Dense kernel to transpose"
  flat[square[0]] = flat[square[0]].T
  return flax.traverse_util.unflatten_dict(flat, sep="/")


@pytest.mark.parametrize("mutation", [swap_query_key, transpose_square_kernel])
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_wrong_mapping_breaks_parity(family, mutation, checkpoints):
  diffs = max_differences(family, checkpoints(family), mutation)
  assert max(diffs.values()) > 100 * PARITY_ATOL, diffs


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_missing_misshaped_and_unexpected_weights_are_named(family, checkpoints,
                                                           tmp_path):
  """A checkpoint with one weight removed, one of the wrong shape, or one the
  family does not know fails with a message naming that weight."""
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  source = checkpoints(family)
  weights = load_file(str(source / "model.safetensors"))
  name = sorted(k for k in weights if "norm" in k.lower() and k.endswith(".weight"))[-1]
  unknown = name.rsplit(".", 2)[0] + ".unknown_projection.weight"
  for variant, edit, named in [
      ("missing", lambda w: w.pop(name), name),
      ("misshaped", lambda w: w.__setitem__(name, np.zeros(
          (*w[name].shape[:-1], w[name].shape[-1] + 1), np.float32)), name),
      ("unexpected", lambda w: w.__setitem__(unknown, np.ones(3, np.float32)),
       unknown)]:
    directory = tmp_path / variant
    directory.mkdir()
    (directory / "config.json").write_text((source / "config.json").read_text())
    edited = dict(weights)
    edit(edited)
    save_file(edited, str(directory / "model.safetensors"))
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
      mmjax_outputs(family, directory)


def test_pytorch_bin_checkpoints_load_like_safetensors(checkpoints, tmp_path):
  """`pytorch_model.bin` (read with `torch.load(weights_only=True)`) gives the
  same encoder as the same weights in model.safetensors."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  source = checkpoints("bert")
  weights = load_file(str(source / "model.safetensors"))
  torch.save({k: torch.from_numpy(v) for k, v in weights.items()},
             tmp_path / "pytorch_model.bin")
  (tmp_path / "config.json").write_text((source / "config.json").read_text())
  from_bin = mmjax_outputs("bert", tmp_path)
  for output, value in mmjax_outputs("bert", source).items():
    np.testing.assert_array_equal(from_bin[output], value)
