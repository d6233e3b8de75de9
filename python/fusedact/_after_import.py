"""Run a callback right after a module is first imported, without importing it ourselves.

fusedact registers things with parts of torch it must not import eagerly (DTensor's sharding
rules, torch.compile's substitutions for the functional fast path): importing them would
cost import time and side effects for every user.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Callable


def call_after_import(module_name: str, callback: Callable[[], None]) -> None:
    """`callback()` now if `module_name` is imported, else right after its first import."""
    if module_name in sys.modules:
        callback()
    else:
        sys.meta_path.insert(0, _AfterImport(module_name, callback))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds the module's spec through the other finders and wraps the loader's
    exec_module; it touches nothing else and removes itself once it has fired."""

    def __init__(self, module_name: str, callback: Callable[[], None]):
        self.module_name = module_name
        self.callback = callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.module_name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        hook = self

        class _Loader(importlib.abc.Loader):
            def create_module(self, module_spec):
                return loader.create_module(module_spec)

            def exec_module(self, module):
                # Restore the real loader, so the module looks as if imported normally.
                module_spec = getattr(module, "__spec__", None)
                if module_spec is not None:
                    module_spec.loader = loader
                module.__loader__ = loader
                loader.exec_module(module)
                hook._remove()
                hook.callback()

        spec.loader = _Loader()
        return spec

    def _remove(self):
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
