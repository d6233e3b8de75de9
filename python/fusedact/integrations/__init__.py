"""Adapters that put fusedact ops into third-party model code.

- `fusedact.integrations.transformers`: one fused gated call per Llama-style MLP of a
  Hugging Face transformers model (patch_model / unpatch / patched).

Importing this package imports none of those libraries.
"""

__all__ = ["transformers"]
