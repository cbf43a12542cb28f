"""Torch-free runtimes for exported bundles: numpy, Pillow and onnxruntime only."""
