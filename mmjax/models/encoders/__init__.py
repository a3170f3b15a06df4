"""Encoders, one file per modality family, registered in `registries.ENCODERS`.

Interface: `encoder(**config)(batch_of_one_modality, train=...)` returns
tokens `[batch, tokens, dim]`.
"""

from mmjax.models.encoders import audio  # noqa: F401  (registers spectrogram_cnn)
from mmjax.models.encoders import image  # noqa: F401  (registers cnn)
