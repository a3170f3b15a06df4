"""Registries of model parts, selected by name from `config.model`."""

from mmjax.registry import Registry

# Maps one modality's batch to tokens `[batch, tokens, dim]`.
ENCODERS = Registry("encoder")
# Maps `{modality: [batch, tokens, dim]}` + presence masks to logits.
FUSION = Registry("fusion block")
