"""Using a trained model on new raw inputs: `mmjax.Predictor`
(`mmjax.predict.predictor`: predict, embed, zero-shot, retrieval), the
decoding of raw files into the run's dataset features (`decode`), the rows
(`rows`, `batches`) and launch.py's `--mode=predict` / `--mode=embed`
outputs (`cli`)."""
