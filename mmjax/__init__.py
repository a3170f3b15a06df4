"""mmjax: multimodal learning in JAX/Flax.

`mmjax.Predictor` (`mmjax.predict.predictor`): a trained workdir applied to
new raw files and texts; imported on first use, so `import mmjax` stays
light.
"""

__version__ = "0.1.0"


def __getattr__(name):
  if name == "Predictor":
    from mmjax.predict.predictor import Predictor  # pylint: disable=g-import-not-at-top
    return Predictor
  raise AttributeError(f"module 'mmjax' has no attribute {name!r}")
