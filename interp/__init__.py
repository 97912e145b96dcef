"""Neurons to Words: describe a CNN's conv1 activations in words with a fine-tuned LLM.

The data flow (one module per noun):
image -> target (TargetCNN) -> activations [b, 8, 14, 14] -> encoding (thresholds)
-> prompt -> interpreter (LLM + LoRA) -> language (parse) -> metrics / chat / store.
"""

__version__ = "0.1.0"
