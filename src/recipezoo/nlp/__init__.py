"""NLP: text classification (multi-class and multi-label) and token classification (NER, POS).

- ``models.py``: the pretrained door for Hugging Face encoders (:func:`~recipezoo.nlp.models.load_encoder`,
  :func:`~recipezoo.nlp.models.load_tokenizer`), task heads over them, and from-scratch baselines.
"""
