"""Stage 2: the target CNN (`cnn`), its conv1 activations (`activations`), a look at its filters (`filters`) and
one measured sentence per filter (`profiles`)."""
