"""Datasets as numpy readers (deploy side: no torch import here)."""
