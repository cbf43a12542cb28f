"""The speech tasks, registered with :mod:`recipezoo.core.registry` (import strings only: cheap to import)."""

from recipezoo.core.registry import register_task

for name, module in (("audio_classification", "AudioClassifier"), ("speech_recognition", "SpeechRecognizer")):
    register_task(
        name,
        module=f"recipezoo.speech.task:{module}",
        runtime="recipezoo.runtime.audio",
        predictor="recipezoo.speech.predict:predict_audio",
        inputs=("audio",),
    )
