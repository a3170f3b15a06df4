"""Pretrained encoders: Hugging Face checkpoints and other mmjax runs.

Importing this package registers every checkpoint family (one module each).
"""

from mmjax.pretrained import (audio_spectrogram_transformer, bert,  # noqa: F401
                              clip_text, clip_vision, families, vit, whisper)
from mmjax.pretrained.load import (initialize_encoders,  # noqa: F401
                                   is_mmjax_workdir, load_hf_encoder,
                                   load_workdir_encoder,
                                   pretrained_encoder_config)

FAMILIES = families.FAMILIES
