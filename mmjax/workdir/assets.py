"""The run's preprocessing state fitted on training data, kept in its
workdir: `W/assets/`.

A pp spec names files prepared with the dataset through `{dataset_dir}`
(`mmjax.data.pipeline.resolve_dataset_dir`), e.g. the byte-level BPE
tokenizer that the emoji and manifest builders train on the training split:
`tokenize(tokenizer="{dataset_dir}/tokenizer", max_length=16)`. A dataset
prepared from other data (another `manual_dir`) fits its own, different
tokenizer, so reading those files from whatever dataset an evaluation
prepares would feed a trained model token ids it never saw. Instead, when a
run starts, every `{dataset_dir}/<path>` of `config.pp_train`,
`config.pp_eval` and `config.zero_shot.pp` is copied to `W/assets/<path>`
and fingerprinted (`W/assets/assets.json`, and each checkpoint's custom
metadata), and every mode then reads the run's copy: `bind` replaces
`{dataset_dir}` by the assets folder. Nothing re-fits.
"""

import hashlib
import json
import os
import re
import tempfile
from typing import Dict, List, Optional

from etils import epath
import jax
from jax.experimental import multihost_utils
import ml_collections

from mmjax import paths
from mmjax.data import pipeline
from mmjax.data.errors import DataError
from mmjax.train import writers

ASSETS_DIR = "assets"
RECORD = "assets.json"
# `{dataset_dir}/<relative path>` inside a pp spec's string argument.
_REFERENCE = re.compile(re.escape(pipeline.DATASET_DIR) + r"(/[^\"'|,)\s]*)?")
# The config keys holding pp specs (`{modality: spec}` or one spec).
PP_KEYS = ("pp_train", "pp_eval", "zero_shot.pp")


def _specs(config: ml_collections.ConfigDict) -> Dict[str, str]:
  """`{dotted config key: pp spec}` of every spec in `PP_KEYS`."""
  specs = {}
  for key in PP_KEYS:
    node = config
    for part in key.split("."):
      node = node.get(part) if node is not None else None
    if isinstance(node, str):
      specs[key] = node
    elif node is not None:
      specs.update({f"{key}.{m}": s for m, s in node.items()
                    if isinstance(s, str)})
  return specs


def referenced_paths(config: ml_collections.ConfigDict) -> List[str]:
  """The relative paths (e.g. "tokenizer") that the config's pp specs name
  under `{dataset_dir}`, sorted.

  Raises:
    ValueError: for a bare `{dataset_dir}` (the whole prepared dataset is
      not an asset: name the file or folder under it), or a path leaving it.
  """
  found = set()
  for key, spec in _specs(config).items():
    for match in _REFERENCE.finditer(spec):
      relative = (match.group(1) or "").strip("/")
      if not relative or ".." in relative.split("/"):
        raise ValueError(
            f"config.{key}={spec!r}: {pipeline.DATASET_DIR} must name a file "
            f"or folder inside the prepared dataset, e.g. "
            f"{pipeline.DATASET_DIR}/tokenizer")
      found.add(relative)
  return sorted(found)


def _files(folder: epath.Path) -> List[epath.Path]:
  """Every file under `folder`, recursively (epath's `rglob` refuses `**`,
  costly on GCS; asset folders hold a few files)."""
  found = []
  for p in folder.iterdir():
    found += _files(p) if p.is_dir() else [p]
  return found


def fingerprint(path: epath.PathLike) -> str:
  """sha256 (hex) over a file's bytes, or over a folder's files: each one's
  path relative to the folder and bytes, in sorted order.

  Raises:
    FileNotFoundError: when `path` does not exist.
  """
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist")
  digest = hashlib.sha256()
  files = [path] if path.is_file() else sorted(_files(path))
  for f in files:
    relative = "" if f == path else os.fspath(f.relative_to(path))
    digest.update(relative.encode() + b"\0")
    digest.update(f.read_bytes())
    digest.update(b"\0")
  return digest.hexdigest()


def _copy(source: epath.Path, target: epath.Path) -> None:
  if source.is_file():
    target.parent.mkdir(parents=True, exist_ok=True)
    source.copy(target)
    return
  for f in _files(source):
    _copy(f, target / f.relative_to(source))


def capture(config: ml_collections.ConfigDict, dataset_dir: epath.PathLike,
            workdir: epath.PathLike) -> Dict[str, Dict[str, str]]:
  """Copies each referenced `{dataset_dir}/<path>` into `W/assets/<path>`
  (replacing an earlier capture: call it for a run with no checkpoint yet)
  and writes `W/assets/assets.json`; only the chief writes, the others wait.

  Returns:
    The record `{path: {"fingerprint": sha256, "source": where from}}`.

  Raises:
    DataError: naming a referenced path the prepared dataset lacks.
  """
  dataset_dir, workdir = epath.Path(dataset_dir), epath.Path(workdir)
  record = {}
  for relative in referenced_paths(config):
    source = dataset_dir / relative
    if not source.exists():
      raise DataError(
          f"{source} does not exist: the config's pp specs name "
          f"{pipeline.DATASET_DIR}/{relative}, which the prepared dataset "
          f"{dataset_dir} lacks")
    record[relative] = {"fingerprint": fingerprint(source),
                        "source": os.fspath(source)}
  if writers.is_chief() and record:
    target = workdir / ASSETS_DIR
    staging = workdir / f".{ASSETS_DIR}.tmp"
    if staging.exists():
      staging.rmtree()
    for relative in record:
      _copy(dataset_dir / relative, staging / relative)
    writers.write_json_atomic(staging / RECORD, record)
    if target.exists():
      target.rmtree()
    staging.rename(target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("mmjax.workdir.assets.capture")
  return record


def read_record(workdir: epath.PathLike) -> Optional[Dict[str, Dict[str, str]]]:
  """`W/assets/assets.json`, or None for a run without assets (one trained
  before mmjax kept them, or whose pp names no dataset file)."""
  path = epath.Path(workdir) / ASSETS_DIR / RECORD
  return json.loads(path.read_text()) if path.exists() else None


def verify(config: ml_collections.ConfigDict, workdir: epath.PathLike
           ) -> Dict[str, Dict[str, str]]:
  """The run's asset record, after checking that `W/assets` holds every
  path the config's pp specs name, unchanged since it was captured.

  Raises:
    DataError: naming the asset that is missing or whose fingerprint differs
      from the recorded one.
  """
  workdir = epath.Path(workdir)
  record = read_record(workdir) or {}
  for relative in referenced_paths(config):
    if relative not in record:
      raise DataError(
          f"{workdir / ASSETS_DIR} has no {relative!r} (it holds "
          f"{sorted(record)}): the config's pp specs name "
          f"{pipeline.DATASET_DIR}/{relative}, which the run was not "
          f"trained with")
  for relative, entry in record.items():
    path = workdir / ASSETS_DIR / relative
    actual = fingerprint(path) if path.exists() else "missing"
    if actual != entry["fingerprint"]:
      raise DataError(
          f"{path} differs from what run {workdir} was trained with "
          f"(fingerprint {actual[:12]} vs recorded "
          f"{entry['fingerprint'][:12]}): restore it from the run's source "
          f"{entry['source']}")
  return record


def compare_with_dataset(record: Dict[str, Dict[str, str]],
                         dataset_dir: epath.PathLike) -> Dict[str, Dict]:
  """`{path: {"run": fingerprint, "dataset": fingerprint or None}}` for each
  asset whose copy in `dataset_dir` differs from the run's (None: absent):
  what an evaluation on that dataset would have re-fitted."""
  differs = {}
  for relative, entry in record.items():
    own = epath.Path(dataset_dir) / relative
    dataset = fingerprint(own) if own.exists() else None
    if dataset != entry["fingerprint"]:
      differs[relative] = {"run": entry["fingerprint"], "dataset": dataset}
  return differs


def local_dir(workdir: epath.PathLike) -> str:
  """A local folder holding `W/assets`: the folder itself, or for a remote
  workdir (`gs://...`) a copy in a temporary folder (pp ops read local
  files)."""
  assets = epath.Path(workdir) / ASSETS_DIR
  if not paths.is_remote(assets):
    return os.fspath(assets.absolute())
  local = epath.Path(tempfile.mkdtemp(prefix="mmjax_assets_"))
  _copy(assets, local)
  return os.fspath(local)


def bind(config: ml_collections.ConfigDict, assets_dir: str
         ) -> ml_collections.ConfigDict:
  """A copy of `config` whose pp specs (`PP_KEYS`) read `assets_dir` where
  they name `{dataset_dir}`.

  Raises:
    ValueError: if `assets_dir` holds a character a spec cannot quote.
  """
  if any(c in assets_dir for c in "|'\"\\"):
    raise ValueError(f"cannot put the assets folder {assets_dir!r} into a pp "
                     f"spec: its path holds | ' \" or \\")
  bound = ml_collections.ConfigDict(config.to_dict())
  for key, spec in _specs(config).items():
    *parents, leaf = key.split(".")
    node = bound
    for part in parents:
      node = node[part]
    node[leaf] = spec.replace(pipeline.DATASET_DIR, assets_dir)
  if config.is_locked:
    bound.lock()
  return bound


def for_run(config: ml_collections.ConfigDict, dataset_dir: epath.PathLike,
            workdir: epath.PathLike
            ) -> "tuple[ml_collections.ConfigDict, Optional[Dict]]":
  """The config to build the input pipelines of a trained run with (a
  resumed run, evaluation, robustness, prediction), and its asset record:
  the run's own assets, verified. (A fresh run reads the dataset's, which
  it `capture`s.) A run without an asset record (trained before mmjax kept
  them) keeps reading `{dataset_dir}` as it did, with a printed warning.

  Args:
    config: the run's config, with `{dataset_dir}` in its pp specs.
    dataset_dir: the prepared dataset's folder (`builder.data_dir`).
    workdir: the run's folder.

  Returns:
    (the config bound to `W/assets` (or `config` itself when its pp names no
    dataset file or the run has no assets), the record or None).

  Raises:
    DataError: an asset missing or changed since the run captured it.
  """
  if not referenced_paths(config):
    return config, None
  record = read_record(workdir)
  if record is None:
    if writers.is_chief():
      print(f"Warning: {workdir} has no {ASSETS_DIR}/{RECORD} (a run from "
            f"before mmjax kept its fitted preprocessing state): reading "
            f"{', '.join(referenced_paths(config))} from the dataset "
            f"{dataset_dir}; it must be the dataset the run was trained on",
            flush=True)
    return config, None
  verify(config, workdir)
  return bind(config, local_dir(workdir)), record


def fingerprints(record: Optional[Dict[str, Dict[str, str]]]
                 ) -> Dict[str, str]:
  """`{path: fingerprint}` of an asset record (the checkpoints' metadata)."""
  return {k: v["fingerprint"] for k, v in (record or {}).items()}
