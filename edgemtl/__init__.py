"""edgemtl: self-distilled multi-task dense prediction, from training to the edge device."""

__version__ = "0.1.0"
