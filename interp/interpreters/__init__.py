"""Stage 4: the interpreters. Prompt and questions, base LLMs (`presets`, `models`), the text interpreter (`text`),
the activation reader (`reader`), the probe, `registry` (one interface, `load_interpreter`), the training data
(`dataset`) and fine-tuning (`training`, `finetune`, `reader_training`), chat."""
