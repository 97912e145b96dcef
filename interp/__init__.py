"""Neurons to Words: describe a CNN's conv1 activations in words with a fine-tuned LLM.

Laid out by stage (docs/ARCHITECTURE.md): data → target → encoding → interpreters → evaluation, with
`pipeline` walking one image through them; `store`, `jobs` and `cli` serve them.
"""

__version__ = "0.1.0"
