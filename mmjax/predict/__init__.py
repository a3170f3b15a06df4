"""Using a trained model on new raw inputs: `mmjax.Predictor`
(`mmjax.predict.predictor`; its contrastive methods, embed, zero-shot and
retrieval, in `contrastive`), the decoding of raw files into the run's
dataset features (`decode`), the rows (`rows`, `batches`, `records`) and
launch.py's `--mode=predict` / `--mode=embed` outputs (`cli`)."""
