"""The NLP tasks, registered with :mod:`recipezoo.core.registry` (import strings only: cheap to import)."""

from recipezoo.core.registry import register_task

for name, module in (("text_classification", "TextClassifier"), ("token_classification", "TokenClassifier")):
    register_task(
        name,
        module=f"recipezoo.nlp.task:{module}",
        runtime="recipezoo.runtime.text",
        predictor="recipezoo.nlp.predict:predict_texts",
        inputs=("text", "table") if name == "text_classification" else ("text", "conll", "table"),
    )
