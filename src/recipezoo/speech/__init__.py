"""Speech: audio classification (keyword spotting, sound classes) and CTC speech-to-text.

Contracts between the modules (importing this domain's networks never imports Lightning or Hydra; other domains never
import torchaudio):

- ``recipezoo.runtime.audio`` (numpy, soundfile, onnxruntime; no torch): reading any libsndfile format to mono
  float32, resampling exactly as ``torchaudio.functional.resample``, centre crops, batch padding, greedy CTC
  decoding, and the ``OnnxAudioClassifier`` / ``OnnxSpeechRecognizer`` of exported bundles (their ``loader.py``).
- ``data.py``: ``AudioClassificationDataModule`` and ``SpeechRecognitionDataModule`` yield dict batches (``audio``
  ``(B, T)`` at the model's rate, ``lengths``, ``index``, then ``label`` or ``targets``/``target_lengths``/``text``),
  expose ``info`` (labels or tokens, sample rate, preprocessing) and ``restore(info)``. They compose
  ``sources.py`` / ``synthetic.py`` (where items come from) -> ``stages.py`` (targets, file check, split,
  labels / vocabulary, on ``recipezoo.data``) -> ``datasets.py`` (decoding, batches).
- ``frontend.py``: ``FrontEnd`` (waveform -> masked, normalised log-mel / MFCC / waveform on the accelerator),
  ``WaveAugment`` and SpecAugment.
- ``models.py``: networks ``forward(x, lengths)`` -> logits (classifiers) or ``(logits, output_lengths)`` (CTC),
  with ``input_kind``, ``head`` and ``layer_groups()``; the pretrained door ``load_speech_encoder``.
- ``task.py``: ``AudioClassifier`` and ``SpeechRecognizer`` LightningModules; they export front-end + network.
- ``predict.py``: files -> CSV with a checkpoint, an ONNX or a TorchScript bundle.
"""
