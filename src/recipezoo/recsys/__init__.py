"""Recommendation: matrix factorization, NeuMF, two-tower retrieval and SASRec, with full-catalogue ranking metrics.

Contracts between the modules (importing this domain never imports transformers unless an item text column is
configured, and never imports another domain's training code):

- ``recipezoo.runtime.recsys`` (numpy + onnxruntime, no torch): canonical ids, the serving logic (seen items
  excluded, cold-start users served from given history / side features / popularity, top-K) and the torch-free
  ``BundleRecommender`` for ONNX bundles.
- ``data.py``: ``InteractionsDataModule`` (logs from any table or MovieLens by name; item / user side tables; splits
  ``leave_last_out`` / ``time`` / ``random``; id maps fitted on training and carried as ``files``); ``info`` has
  counts and feature widths only. It composes the stages below, each a plain function or small class:
  ``readers.py`` (tables and MovieLens files through ``recipezoo.data.tables``), ``cleaning.py`` (columns, times,
  duplicates, k-core), ``splits.py`` (through ``recipezoo.data.splits``), ``indexing.py`` (id maps, CSR
  structures, evaluation targets), ``sampling.py`` (negatives), ``features.py`` (side features, item texts through
  ``recipezoo.core.backbones.hf``), ``datasets.py`` (batches) and ``synthetic.py`` (the synthetic twin).
- ``models.py``: ``BiasedMF``, ``NeuMF``, ``TwoTower``, ``SASRec`` (torch only), one interface: ``kind``,
  ``user_inputs``, ``score(query, items)``, and for dot-product models ``user_vectors`` / ``item_vectors``.
- ``metrics.py``: full-catalogue ranking in chunks (pessimistic ties), HR / NDCG / Recall @K, MRR, coverage,
  popularity, the sampled-negatives protocol.
- ``task.py``: ``Recommender`` LightningModule (objectives ``rating``, ``bce``, ``sampled_softmax``, ``softmax``).
- ``baselines.py``: popularity, item-kNN, PureSVD; global mean, biases, SVD for ratings.
- ``predict.py``: top-K / pair scores from a checkpoint or a bundle into a CSV.
"""
