"""Encoders, one file per modality family; each registers in `registries.ENCODERS`.

Test settings: each encoder class has a classmethod `tiny()` returning
`{attribute: value}` overrides that make it small and fast; the encoder
contract (tests/models/test_encoder_contract.py) builds every registered
encoder with them, `build_encoder(module_config(ENCODERS, name,
**cls.tiny()))`.

Interface: `encoder(**config)(batch_of_one_modality, train=...)` returns
`(tokens float32 [batch, tokens, dim], token_mask bool [batch, tokens])`;
the class attribute `modality` names the input it takes ("image", "audio",
"text", "video").
`registries.ENCODERS` imports every module of this package on its first
lookup (no list to edit, nothing to import).
"""
