"""Stage 2: the target CNN (`cnn`), its registered layers (`layers`: conv1, conv2), their activations
(`activations`), a look at its filters (`filters`) and one measured sentence per filter (`profiles`)."""
