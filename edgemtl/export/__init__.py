"""Export: one head of a checkpoint -> ONNX / FP16 / INT8 / TensorRT bundles.

Kept import-light on purpose: the deploy side (`profile`, export from a bundle)
imports `edgemtl.core.manifest` on devices without PyTorch, so nothing here
pulls in torch, onnx or onnxruntime. Import the submodules you need.
"""
