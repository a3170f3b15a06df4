"""The training objectives an experiment config can name (`config.objective`).

- "classification" (the default): `MultimodalModel` (encoders -> fusion ->
  head), softmax cross-entropy on `label`, accuracy / macro F1 evaluation.
- "contrastive": `mmjax.models.contrastive.ContrastiveModel` (two encoders
  -> normalised embeddings), the symmetric InfoNCE loss over the global
  batch (`mmjax.train.losses.contrastive_loss`; Radford et al. 2021, CLIP;
  van den Oord et al. 2018, InfoNCE), and cross-modal retrieval plus
  zero-shot classification evaluation (`mmjax.evaluation.retrieval`).

`resolve(config)` gives the `Objective` (`base.py`); each objective is
defined and registered in its own module here.
"""

from mmjax.objectives.base import DEFAULT, OBJECTIVES, Objective, resolve

__all__ = ["DEFAULT", "OBJECTIVES", "Objective", "resolve"]
