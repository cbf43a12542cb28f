"""Backbone doors shared by several domains.

- :mod:`recipezoo.core.backbones.hf`: Hugging Face encoders (``transformers.AutoModel``) for text, speech and the
  text features of recommendation: loading with or without pretrained weights, tokenizers, pooling, sentence
  embeddings.

Each door parses ``pretrained`` with :func:`recipezoo.core.pretrained.parse_pretrained` and imports its library
inside its functions, so importing this package (or a domain that does not use a door) stays cheap.
"""
