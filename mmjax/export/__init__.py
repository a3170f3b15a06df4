"""Using a trained workdir outside mmjax: serving artifacts
(`export.export_workdir`, `--mode=export`: `serving` builds the inference
function, `artifacts` serializes it with jax.export and jax2tf) and the
model card (`model_card.write_model_card`, `limits`)."""
