"""Fusion blocks, one file per family; each registers in `registries.FUSION`.

The interface is in `base.py`. `registries.FUSION` imports every module of
this package on its first lookup, so a new block is one new file with
`@FUSION.register("my_block")`, with no list to edit and nothing to import.
"""
