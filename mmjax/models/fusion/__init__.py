"""Fusion blocks, one file per family; each registers in `registries.FUSION`.

The interface is in `base.py`. Every module of this package is imported here,
so a new block is one new file with `@FUSION.register("my_block")`, with no
list to edit.
"""

import importlib as _importlib
import pkgutil as _pkgutil

for _module in _pkgutil.iter_modules(__path__):
  _importlib.import_module(f"{__name__}.{_module.name}")
