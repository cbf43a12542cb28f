"""recipezoo: a PyTorch Lightning model zoo assembled from Hydra recipes.

Importing the package is cheap on purpose: it imports no torch, so the exported-model runtime
(:mod:`recipezoo.runtime`) works on machines that only have numpy, Pillow and onnxruntime.
"""

__version__ = "0.1.0"

from recipezoo.core.imports import defer_optional_backends as _defer

_defer()  # torchmetrics would import transformers / torchvision / torchaudio at start-up: see core/imports.py
