"""Inference concern: stream consumer -> tiler -> ONNX models -> defects -> verdict."""
