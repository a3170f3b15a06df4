"""The training objectives an experiment config can name (`config.objective`).

- "classification" (the default): `MultimodalModel` (encoders -> fusion ->
  head), softmax cross-entropy on `label`, accuracy / macro F1 evaluation.
- "contrastive": `mmjax.models.contrastive.ContrastiveModel` (two encoders
  -> normalised embeddings), the symmetric InfoNCE loss over the global
  batch (`mmjax.train.losses.contrastive_loss`; Radford et al. 2021, CLIP;
  van den Oord et al. 2018, InfoNCE), and cross-modal retrieval plus
  zero-shot classification evaluation (`mmjax.train.retrieval`).

What differs per objective is chosen from this name in three places, each a
small table: the model builder (`mmjax.models.multimodal.build_model`), the
loss of the one train step (`mmjax.train.steps.OBJECTIVE_LOSSES`) and the
evaluator (`mmjax.train.evaluate.make_evaluator`).
"""

OBJECTIVES = ("classification", "contrastive")
DEFAULT = "classification"


def get(config) -> str:
  """`config.objective` (configs without the key: "classification").

  Raises:
    ValueError: naming config.objective and the allowed values.
  """
  return check(config.get("objective", DEFAULT))


def check(name: str) -> str:
  """Returns `name` if it is one of `OBJECTIVES`.

  Raises:
    ValueError: naming config.objective and the allowed values.
  """
  if name not in OBJECTIVES:
    raise ValueError(f"config.objective must be one of {OBJECTIVES}, got "
                     f"{name!r}")
  return name
