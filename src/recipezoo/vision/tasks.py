"""The vision tasks, registered with :mod:`recipezoo.core.registry` (import strings only: cheap to import)."""

from recipezoo.core.registry import register_task

register_task(
    "image_classification",
    module="recipezoo.vision.task:ImageClassifier",
    runtime="recipezoo.runtime.vision",
    predictor="recipezoo.vision.predict:predict_images",
    inputs=("image",),
    functions={"predict_paths": "recipezoo.vision.predict:predict_paths"},
)
