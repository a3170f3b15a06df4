"""`--mode=export`: a trained workdir's latest checkpoint as serving
artifacts in `<workdir>/export/`, loadable without mmjax.

- `serving_default.jax_export`, `with_presence.jax_export`: the inference
  function serialized by `jax.export` (StableHLO), for plain JAX;
- `saved_model/`: a TensorFlow SavedModel (jax2tf) with the signatures
  `serving_default` and `with_presence`, for TF Serving;
- `signature.json`: inputs, outputs, class names, the preprocessing the
  caller applies first (`config.pp_eval`), checkpoint step, mmjax commit.

`serving_default` takes the model's inputs (every modality present);
`with_presence` also takes `present_<modality>` (float32 `[batch]`, 0.0
where the modality is missing: give any array of its shape, e.g. zeros,
and the fusion block ignores it, as `--mode=robustness` evaluates it).
"""

import uuid

from etils import epath
import jax
import ml_collections

from mmjax import objectives
from mmjax.data import pipeline
from mmjax.evaluation import restore
from mmjax.export import artifacts, model_card, serving
from mmjax.train import writers

ENTRY_POINTS = {"serving_default": False, "with_presence": True}
SIGNATURE_FILE = "signature.json"
SAVED_MODEL = "saved_model"
FORMAT_VERSION = 1


def export_workdir(config: ml_collections.ConfigDict,
                   workdir: epath.PathLike,
                   platforms=artifacts.PLATFORMS) -> epath.Path:
  """Exports the latest checkpoint of `workdir` to `<workdir>/export/`
  (see the module docstring) and writes `<workdir>/model_card.md`.

  The folder is written beside it and then put in place, replacing an
  earlier export.

  Args:
    config: the run's experiment config (`config.objective`
      "classification").
    workdir: the trained run.
    platforms: the platforms the artifacts run on (`jax.export`'s).

  Returns:
    The export folder.

  Raises:
    FileNotFoundError: when `workdir` has no checkpoint.
    ValueError: for another objective than classification, several
      processes, or a checkpoint that does not match the config's model.
  """
  objective = objectives.resolve(config)
  if objective.name != "classification":
    raise ValueError(f"--mode=export supports config.objective "
                     f"'classification'; this run's is {objective.name!r}")
  if jax.process_count() > 1:
    raise ValueError("--mode=export runs in one process; got "
                     f"{jax.process_count()}")
  workdir = epath.Path(workdir)
  builder, state, manager, _, step = restore.restore_for_evaluation(
      config, workdir, objective)
  manager.close()
  modalities = tuple(config.modalities)
  dataset, _ = pipeline.eval_batches(
      builder, config.eval_splits[0], modalities=modalities,
      pp=config.pp_eval, global_batch_size=1)
  inputs = serving.model_inputs(dataset.element_spec, modalities)
  variables = jax.device_get(state.variables())
  aux_heads = all(f"{m}_aux_head" in variables["params"] for m in modalities)
  entries = {}
  for name, with_presence in ENTRY_POINTS.items():
    fn = serving.make_inference_fn(
        state.apply_fn, inputs, modalities, dtype=config.dtype,
        aux_heads=aux_heads, with_presence=with_presence)
    names = inputs + (serving.presence_inputs(modalities)
                      if with_presence else [])
    entries[name] = (artifacts.export_with_variables(fn, variables, names,
                                                     platforms), names)

  out_dir = workdir / "export"
  tmp = workdir / f"export.tmp-{uuid.uuid4().hex}"
  tmp.mkdir(parents=True)
  try:
    for name, (exported, names) in entries.items():
      closed = artifacts.export_stablehlo(exported, variables, names,
                                          tmp / f"{name}.jax_export")
    artifacts.export_saved_model(entries, variables, tmp / SAVED_MODEL)
    writers.write_json_atomic(tmp / SIGNATURE_FILE, _signature(
        config, workdir, step, {n: names for n, (_, names) in entries.items()},
        serving.output_infos(config.model.num_classes, modalities, aux_heads),
        closed, builder))
  except BaseException:
    tmp.rmtree()
    raise
  if out_dir.exists():
    out_dir.rmtree()
  tmp.rename(out_dir)
  model_card.write_model_card(config, workdir)
  return out_dir


def _signature(config, workdir, step, entry_inputs, outputs, exported,
               builder):
  """The content of signature.json."""
  batch = artifacts.BATCH
  return {
      "format_version": FORMAT_VERSION,
      "mmjax_commit": model_card.mmjax_commit(),
      "workdir": str(workdir), "checkpoint_step": int(step),
      "objective": "classification", "dtype": config.dtype,
      "modalities": list(config.modalities), "batch_dimension": batch,
      "platforms": list(exported.platforms), "jax_version": jax.__version__,
      "calling_convention_version": exported.calling_convention_version,
      "entry_points": {
          name: {"jax_export": f"{name}.jax_export",
                 "saved_model": SAVED_MODEL, "saved_model_signature": name,
                 "inputs": [i.as_json(batch) for i in inputs]}
          for name, inputs in entry_inputs.items()},
      "outputs": [o.as_json(batch) for o in outputs],
      "class_names": list(builder.info.features["label"].names),
      "preprocessing": {
          "pp_eval": config.pp_eval.to_dict(),
          "note": "apply config.pp_eval (mmjax.data.pp) to each raw "
                  "example before the call; the inputs are its outputs, "
                  "batched"},
      "dataset": builder.info.full_name,
  }
