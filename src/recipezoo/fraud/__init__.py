"""Fraud detection: tabular deep models for rare-event classification.

Contracts between the modules (importing this domain never imports transformers, torchaudio or timm):

- ``recipezoo.runtime.tabular`` (numpy only, no torch, no pandas required): ``TabularPreprocessor`` fitted on the
  training rows and serialised to JSON (``to_dict``/``from_dict``); ``transform(columns) -> (x_num, x_cat)`` with
  ``x_num`` float32 ``(N, n_num)`` and ``x_cat`` int64 ``(N, n_cat)`` (index 0 = out-of-vocabulary / rare);
  ``calibrate(scores, calibration)`` and the torch-free ``OnnxFraudScorer`` for exported bundles.
- ``data.py``: ``TabularDataModule`` yields ``(x_num, x_cat, y)`` batches (y float32 0/1), exposes ``info``
  (preprocessing dict, ``n_num``, ``cardinalities``, ``pos_weight``, ``positive_rate``) and ``restore(info)``.
- ``models.py``: networks with ``forward(x_num, x_cat) -> score (B,)``: a logit for the classifiers
  (``TabularMLP``, ``FTTransformer``), the reconstruction error for ``TabularAutoencoder``.
- ``metrics.py``: threshold selection, expected cost, ECE, calibration fitting, prevalence-reweighted AUPRC.
- ``task.py``: ``FraudDetector`` LightningModule; chooses the decision threshold and the calibration on validation.
- ``baseline.py``: scikit-learn HistGradientBoosting on the same split, scored with the same metrics (validation
  included, so the run says whether it beat the deep model), saved as ONNX with its threshold.
- ``gbdt_onnx.py``: the fitted trees as an exact ONNX graph with the networks' interface ``(x_num, x_cat) -> score``
  (log-odds), which ``scripts/export.py ... model=baseline`` bundles like a deep model.
"""
