"""Defect networks of lineinspect: architectures (PyTorch), training, ONNX export, evaluation.

PyTorch is only needed for training and export (`pip install lineinspect[train]`);
the service itself runs the exported ONNX files in `models/zoo/` on onnxruntime.
"""
