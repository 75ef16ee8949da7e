"""Training data: samplers, augmentations, chip datasets and their statistics."""
