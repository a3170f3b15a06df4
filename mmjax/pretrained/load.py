"""`init_from`: encoder parameters from a Hugging Face checkpoint or from the
latest Orbax checkpoint of another mmjax run.

`config.model.encoders.<modality>.init_from` names either
  - a Hugging Face checkpoint: a local `save_pretrained` directory or a hub
    id (`mmjax.pretrained.checkpoint_files`), read by its family's mapping
    (`mmjax.pretrained.families`); the encoder attributes the checkpoint
    fixes must equal the config's (`pretrained_encoder_config` builds them);
  - an mmjax workdir (it has `checkpoints/` and `config.json`; local or
    `gs://...`, read through `etils.epath`): the `<modality>_encoder`
    parameters of its latest checkpoint, e.g. the audio encoder of an
    audio-only run into a fused model.
A video `frame_encoder` may also take its per-frame image encoder from a
run's image encoder: `config.model.encoders.video.image_encoder.init_from`.
"""

import json
from typing import Any, Dict, Mapping, Tuple

from etils import epath
import flax
import ml_collections
import numpy as np

from mmjax.models.registries import ENCODERS, module_config, split_options
from mmjax.pretrained import checkpoint_files
from mmjax.pretrained.families import find_family
from mmjax.pretrained.weight_map import WeightError, WeightSource, assemble


def is_mmjax_workdir(path: str) -> bool:
  p = epath.Path(path).expanduser()
  return (p / "checkpoints").is_dir() and (p / "config.json").is_file()


# What to do instead of changing an attribute the checkpoint fixes, where
# the wish behind the change has another way.
HINTS = {
    "max_length": "the encoder takes any input length up to its max_length "
                  "(the position table's size): for shorter texts keep it "
                  "and set the tokenize op's max_length",
    "frontend.max_length": "it is the number of frames the position table "
                           "was trained for: clips are padded or cut to it",
}


def pretrained_encoder_config(init_from: str, encoder: str,
                              **overrides: Any) -> ml_collections.ConfigDict:
  """The encoder config (`{"name", **attributes, "init_from"}`) that fits the
  Hugging Face checkpoint `init_from`: the registered defaults, the
  attributes the checkpoint fixes, then `overrides` (e.g. `pool`). A dict
  override of a dict attribute the checkpoint fixes is merged into it (e.g.
  AST's `frontend={"mean": -4.3, "std": 4.6}`, the normalisation statistics
  of a fine-tuned checkpoint).

  Raises:
    FileNotFoundError, ValueError: see `checkpoint_files`, `find_family`.
    ValueError: naming every override that changes an attribute the
      checkpoint fixes, and what to do instead.
  """
  directory = checkpoint_files.resolve(init_from)
  hf_config = checkpoint_files.load_config(directory)
  family = find_family(hf_config.get("model_type", ""), encoder)
  attributes = family.encoder_attributes(family.sub_config(hf_config))
  merged = {k: _plain(v) for k, v in overrides.items()}
  for key, value in merged.items():
    if isinstance(attributes.get(key), Mapping) and isinstance(value, Mapping):
      merged[key] = {**attributes[key], **value}
  family.check_encoder(
      family.sub_config(hf_config), {**attributes, **merged},
      f"pretrained_encoder_config({str(init_from)!r}, {encoder!r}): override ")
  conflicts = _conflicts(merged, attributes)
  if conflicts:
    raise ValueError(
        f"pretrained_encoder_config({str(init_from)!r}, {encoder!r}): "
        f"overrides of attributes the checkpoint fixes:\n  "
        + "\n  ".join(_describe(key, mine, theirs, "override ")
                      for key, (mine, theirs) in conflicts.items())
        + "\nLeave these keys out of the overrides.")
  return module_config(ENCODERS, encoder, **{**attributes, **merged},
                       init_from=str(init_from))


def _conflicts(config: Mapping[str, Any], fixed: Mapping[str, Any],
               prefix: str = "") -> Dict[str, Tuple[Any, Any]]:
  """`{dotted key: (config's value, checkpoint's)}` of every key the
  checkpoint fixes that `config` sets otherwise. In a dict attribute (AST's
  `frontend`) only the keys the checkpoint fixes count: the others (its
  normalisation `mean` and `std`, `sample_rate`) are the user's."""
  found = {}
  for key, theirs in fixed.items():
    if key not in config:
      continue
    mine = _plain(config[key])
    if isinstance(theirs, Mapping) and isinstance(mine, Mapping):
      found.update(_conflicts(mine, theirs, f"{prefix}{key}."))
    elif _normalise(mine) != _normalise(theirs):
      found[prefix + key] = (mine, theirs)
  return found


def _plain(value: Any) -> Any:
  """A ConfigDict as a dict; other values unchanged."""
  if isinstance(value, ml_collections.ConfigDict):
    return value.to_dict()
  return value


def _describe(key: str, mine: Any, theirs: Any, what: str = "") -> str:
  hint = HINTS.get(key)
  return (f"{what}{key}={mine!r}, the checkpoint has {theirs!r}"
          + (f" ({hint})" if hint else ""))


def load_hf_encoder(init_from: str, encoder: Mapping[str, Any],
                    expected: Mapping[str, Any], where: str) -> Dict[str, Any]:
  """Encoder params from a Hugging Face checkpoint.

  Args:
    init_from: checkpoint directory or hub id.
    encoder: the encoder's config, `{"name", **attributes}`.
    expected: the encoder's params as initialised (arrays or shapes).
    where: the config path for messages, e.g. "config.model.encoders.text".

  Raises:
    ValueError: naming every `<where>.<attribute>` that differs from the
      checkpoint's (in a dict attribute such as `frontend`, only the keys
      the checkpoint fixes), with what to do, or an unsupported model type.
    WeightError: naming missing, unexpected or mis-shaped weights.
  """
  directory = checkpoint_files.resolve(init_from)
  hf_config = checkpoint_files.load_config(directory)
  family = find_family(hf_config.get("model_type", ""), encoder["name"])
  sub_config = family.sub_config(hf_config)
  fixed = family.encoder_attributes(sub_config)
  # An attribute the encoder config leaves out has its registered default.
  complete = {**module_config(ENCODERS, encoder["name"]).to_dict(), **encoder}
  conflicts = _conflicts(complete, fixed)
  if conflicts:
    raise ValueError(
        f"{where}.init_from={init_from!r} does not fit the encoder config:\n  "
        + "\n  ".join(f"{where}.{_describe(key, mine, theirs)}"
                      for key, (mine, theirs) in sorted(conflicts.items()))
        + f"\nSet {'these keys' if len(conflicts) > 1 else 'it'} to the "
        f"checkpoint's {'values' if len(conflicts) > 1 else 'value'} "
        f"(mmjax.pretrained.load.pretrained_encoder_config(init_from, "
        f"{encoder['name']!r}, ...) writes them; an override given to it must "
        f"not change them).")
  family.check_encoder(sub_config, complete, f"{where}.")
  weights = checkpoint_files.load_weights(directory)
  source = WeightSource(weights, str(directory), family.weight_prefix(weights))
  try:
    mapped = family.map_weights(source, sub_config)
  except WeightError:
    raise
  except (ValueError, IndexError) as e:  # e.g. a reshape of a wrong shape
    raise WeightError(f"{directory}: mapping failed at checkpoint weight "
                      f"{source.last_taken!r}: {e}") from e
  mapped = _drop_optional(mapped, expected, family.optional_params)
  return assemble(mapped, expected, source,
                  [q for p in family.ignore_prefixes
                   for q in (p, source.prefix + p)])


def load_workdir_encoder(workdir: str, modality: str, expected: Mapping[str, Any],
                         where: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """The `<modality>_encoder` params and batch statistics (`{}` when it has
  none) of the latest checkpoint in `workdir`.

  Raises:
    FileNotFoundError: when `workdir` has no finished checkpoint.
    WeightError: when that run has no such encoder, or its parameter
      paths or shapes differ (naming each path and both runs' encoder
      configs).
  """
  from mmjax import checkpoint  # pylint: disable=g-import-not-at-top
  directory = epath.Path(workdir).expanduser()
  step, tree = checkpoint.restore_latest_tree(directory / "checkpoints")
  name = f"{modality}_encoder"
  params = tree["params"]
  if name not in params:
    raise WeightError(f"{where}.init_from={workdir!r}: the model of that run "
                      f"has no {name} (it has {sorted(params)}; see "
                      f"{directory / 'config.json'})")
  got = flax.traverse_util.flatten_dict(params[name], sep="/")
  want = flax.traverse_util.flatten_dict(flax.core.unfreeze(expected), sep="/")
  problems = []
  if set(want) - set(got):
    problems.append(f"missing in that run: {sorted(set(want) - set(got))}")
  if set(got) - set(want):
    problems.append(f"not in this encoder: {sorted(set(got) - set(want))}")
  problems += [f"{p}: {np.shape(got[p])} in that run, {tuple(want[p].shape)} "
               f"here" for p in sorted(set(got) & set(want))
               if tuple(np.shape(got[p])) != tuple(want[p].shape)]
  if problems:
    run_config = json.loads((directory / "config.json").read_text())
    theirs = run_config.get("model", {}).get("encoders", {}).get(modality)
    raise WeightError(f"{where}.init_from={workdir!r}: the {name} of its step "
                      f"{step} checkpoint does not fit this encoder (that "
                      f"run's encoder config: {theirs}):\n  - "
                      + "\n  - ".join(problems))
  return params[name], tree.get("batch_stats", {}).get(name, {})


def initialize_encoders(config: ml_collections.ConfigDict, params: Mapping[str, Any],
                        batch_stats: Mapping[str, Any]):
  """Replaces the parameters (and batch statistics) of every encoder whose
  config has `init_from`.

  Args:
    config: the experiment config.
    params, batch_stats: the model's freshly initialised variables (arrays).

  Returns:
    (params, batch_stats, `{modality: init_from}` of what was loaded).

  Raises:
    see `load_hf_encoder` and `load_workdir_encoder`.
  """
  params, batch_stats = dict(params), dict(batch_stats)
  loaded = {}
  for m in config.modalities:
    encoder = config.model.encoders[m].to_dict()
    frame_init = (encoder.get("image_encoder") or {}).get("init_from", "")
    if frame_init:
      params[f"{m}_encoder"], loaded[f"{m}.image_encoder"] = (
          _init_frame_encoder(frame_init, params[f"{m}_encoder"],
                              f"config.model.encoders.{m}.image_encoder"))
    init_from = encoder.get("init_from", "")
    if not init_from:
      continue
    name, where = f"{m}_encoder", f"config.model.encoders.{m}"
    if is_mmjax_workdir(init_from):
      params[name], stats = load_workdir_encoder(init_from, m, params[name], where)
      if name in batch_stats:
        batch_stats[name] = stats
    else:
      kwargs, _ = split_options(encoder)
      params[name] = load_hf_encoder(init_from, kwargs, params[name], where)
    loaded[m] = init_from
  return params, batch_stats, loaded


def _init_frame_encoder(workdir: str, params: Mapping[str, Any],
                        where: str) -> Tuple[Dict[str, Any], str]:
  """`params` of a video `frame_encoder` whose per-frame `image_encoder`
  comes from the image encoder of the mmjax run `workdir` (e.g. a CNN
  trained on single digits, applied to every frame of a clip).

  Raises:
    ValueError: when `workdir` is not an mmjax run; see
      `load_workdir_encoder`.
  """
  if not is_mmjax_workdir(workdir):
    raise ValueError(f"{where}.init_from={workdir!r} is not an mmjax workdir "
                     "(with checkpoints/ and config.json); a frame encoder's "
                     "image encoder starts from another run's image encoder")
  params = dict(params)
  params["image_encoder"], _ = load_workdir_encoder(
      workdir, "image", params["image_encoder"], where)
  return params, workdir


def _drop_optional(mapped: Mapping[str, Any], expected: Mapping[str, Any],
                   optional) -> Dict[str, Any]:
  """`mapped` without the paths under an `optional` prefix that `expected`
  lacks (a pooler the encoder config did not choose)."""
  if not optional:
    return dict(mapped)
  want = flax.traverse_util.flatten_dict(flax.core.unfreeze(expected), sep="/")
  got = flax.traverse_util.flatten_dict(dict(mapped), sep="/")
  return flax.traverse_util.unflatten_dict(
      {k: v for k, v in got.items()
       if k in want or not k.startswith(tuple(optional))}, sep="/")


def _normalise(value):
  if isinstance(value, (list, tuple)):
    return tuple(_normalise(v) for v in value)
  if isinstance(value, float):
    return round(value, 12)
  return value
