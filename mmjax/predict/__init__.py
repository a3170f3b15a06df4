"""Using a trained model on new raw inputs: `Predictor` (predict, embed,
zero-shot, retrieval) and the `--mode=predict` / `--mode=embed` outputs of
launch.py (`mmjax.predict.cli`)."""

from mmjax.predict.predictor import Embeddings, Predictor

__all__ = ["Embeddings", "Predictor"]
