"""The fraud tasks, registered with :mod:`recipezoo.core.registry` (import strings only: cheap to import)."""

from recipezoo.core.registry import register_task

register_task(
    "fraud_detection",
    module="recipezoo.fraud.task:FraudDetector",
    runtime="recipezoo.runtime.tabular",
    predictor="recipezoo.fraud.predict:predict_table",
    inputs=("table",),
)
