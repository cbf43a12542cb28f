"""NLP: text classification (multi-class and multi-label) and token classification (NER, POS).

- ``data.py``: the two DataModules, thin orchestrators over the shared data layer (:mod:`recipezoo.data`: tables,
  columns, split files and carving, label maps) and this domain's own stages:
  ``sources.py`` (text rows of a table, cleaned), ``conll.py`` (CoNLL-style and JSON-lines token files, tag schemes),
  ``tokenization.py`` (tokenizers and tokenized splits), ``cache.py`` (the tokenization cache), ``datasets.py``
  (datasets, length-grouped sampling, dynamic padding) and ``synthetic.py`` (the synthetic twins).
- ``models.py``: task heads over Hugging Face encoders, and from-scratch baselines. The Hugging Face door itself
  (:func:`~recipezoo.core.backbones.hf.load_encoder`, :func:`~recipezoo.core.backbones.hf.load_tokenizer`...) lives
  in :mod:`recipezoo.core.backbones.hf`, shared with the other domains, and is re-exported by ``models.py``.
- ``task.py``: the LightningModules; ``metrics.py``: span F1 and multi-label thresholds; ``predict.py``: prediction
  on raw text; ``tasks.py``: the tasks' registration.
"""
