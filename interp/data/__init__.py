"""Stage 1: the images. MNIST (`mnist`), user drawings and uploads (`images`), synthetic shapes with counts (`shapes`)."""
