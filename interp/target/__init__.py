"""Stage 2: the target CNN (`cnn`), its conv1 activations (`activations`) and a look at its filters (`filters`)."""
