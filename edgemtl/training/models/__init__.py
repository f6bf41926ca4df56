"""Torch models: shared encoder, Teacher decoders, Student heads, MultiTaskNet."""
