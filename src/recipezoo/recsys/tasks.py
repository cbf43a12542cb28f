"""The recommendation tasks, registered with :mod:`recipezoo.core.registry` (import strings only: cheap to import)."""

from recipezoo.core.registry import register_task

register_task(
    "recommendation",
    module="recipezoo.recsys.task:Recommender",
    runtime="recipezoo.runtime.recsys",
    predictor="recipezoo.recsys.predict:recommend_table",
    inputs=("users", "pairs"),
)
