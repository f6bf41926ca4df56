"""Deploy-side measurement pieces for `edgemtl profile`: latency, power, accuracy.

Every module here is torch-free: `profile` must run on a device with only
TensorRT or ONNX Runtime and numpy.
"""
