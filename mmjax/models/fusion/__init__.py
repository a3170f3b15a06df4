"""Fusion blocks. Each file registers its blocks in `registries.FUSION`.

Interface: `block(num_classes=..., **config)(tokens, present, train=...)`
with `tokens = {modality: [batch, tokens, dim]}` and
`present = {modality: [batch]}` (1.0 present, 0.0 missing), returning logits
`[batch, num_classes]`.
"""

from mmjax.models.fusion import early  # noqa: F401  (registers early_fusion)
from mmjax.models.fusion import late  # noqa: F401  (registers late_fusion)
