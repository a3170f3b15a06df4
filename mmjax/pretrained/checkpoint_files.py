"""Reading Hugging Face checkpoints: `config.json` and the weights, offline.

A checkpoint is a directory as written by `save_pretrained`: `config.json`
plus `model.safetensors` (or a sharded `model.safetensors.index.json`), or
the older `pytorch_model.bin`, which is read with `torch.load(...,
weights_only=True)`: tensors only, never executing pickled code. A name that
is not a directory is taken for a hub repository id and fetched with
`huggingface_hub.snapshot_download` when the network allows.
"""

import json
import pathlib
from typing import Any, Dict

import numpy as np

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin")


def resolve(name_or_dir: str) -> pathlib.Path:
  """The local directory of a checkpoint: `name_or_dir` itself when it is a
  directory, else a hub download.

  Raises:
    FileNotFoundError: when it is neither a directory nor downloadable (no
      network, unknown repository), with both reasons in the message.
  """
  path = pathlib.Path(name_or_dir).expanduser()
  if path.is_dir():
    return path
  try:
    from huggingface_hub import snapshot_download  # pylint: disable=g-import-not-at-top
    return pathlib.Path(snapshot_download(
        str(name_or_dir), allow_patterns=["*.json", "*.safetensors", "*.txt",
                                          "*.model"]))
  except Exception as e:  # pylint: disable=broad-except
    raise FileNotFoundError(
        f"init_from={name_or_dir!r} is not a directory, and fetching it from "
        f"the Hugging Face hub failed ({type(e).__name__}: {e}). Offline, "
        f"pass a local directory written by `save_pretrained` (config.json "
        f"and model.safetensors).") from None


def load_config(directory: pathlib.Path) -> Dict[str, Any]:
  """The checkpoint's `config.json` as a dict.

  Raises:
    FileNotFoundError: naming the missing file.
    ValueError: naming the file when it is not valid JSON.
  """
  path = pathlib.Path(directory) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing: not a Hugging Face checkpoint "
                            f"directory (expected config.json and one of "
                            f"{WEIGHT_FILES})")
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON: {e}") from None


def load_weights(directory: pathlib.Path) -> Dict[str, np.ndarray]:
  """`{name: float32/int array}` of every weight in the checkpoint, in the
  PyTorch layouts (Linear `[out, in]`, Conv `[out, in, *kernel]`).

  Raises:
    FileNotFoundError: when the directory has none of `WEIGHT_FILES`.
    ImportError: for a `pytorch_model.bin` when torch is not installed.
  """
  directory = pathlib.Path(directory)
  if (directory / "model.safetensors").is_file():
    return _read_safetensors(directory / "model.safetensors")
  index = directory / "model.safetensors.index.json"
  if index.is_file():
    weights = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
      weights.update(_read_safetensors(directory / shard))
    return weights
  if (directory / "pytorch_model.bin").is_file():
    return _read_torch_bin(directory / "pytorch_model.bin")
  raise FileNotFoundError(f"{directory} has no weights: expected one of "
                          f"{WEIGHT_FILES}")


def _read_safetensors(path: pathlib.Path) -> Dict[str, np.ndarray]:
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  return {k: _to_float32(v) for k, v in load_file(str(path)).items()}


def _read_torch_bin(path: pathlib.Path) -> Dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        f"{path} is a PyTorch pickle; reading it safely needs torch "
        f"(`pip install torch==2.13.0`), or convert the checkpoint to "
        f"model.safetensors") from None
  state = torch.load(str(path), map_location="cpu", weights_only=True)
  return {k: _to_float32(v.float().numpy() if v.is_floating_point() else v.numpy())
          for k, v in state.items()}


def _to_float32(array: np.ndarray) -> np.ndarray:
  if np.issubdtype(array.dtype, np.floating) or array.dtype.name == "bfloat16":
    return np.asarray(array, np.float32)
  return np.asarray(array)
