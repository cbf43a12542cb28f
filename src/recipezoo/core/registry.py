"""The task registry: each task's identity, registered once, looked up by every command.

A task is what a LightningModule is trained for (``image_classification``, ``fraud_detection``...). Its
:class:`TaskSpec` says which LightningModule trains it, which torch-free runtime serves its ONNX bundles, which
function predicts with it and what that function reads. ``predict``, ``export``, ``evaluate`` and ``benchmark`` look a
task up here instead of naming domains.

Registering is cheap: the module, runtime and predictor are import strings (``"pkg.mod:Name"``), resolved only when
used, so listing the tasks imports neither torch nor a domain's heavy libraries. Each domain registers its tasks in
``recipezoo/<domain>/tasks.py``; the registry finds those modules itself (every ``recipezoo.<package>.tasks``, then
the ``recipezoo.tasks`` entry points of other installed packages), so adding a domain edits no central file::

    # recipezoo/vision/tasks.py
    from recipezoo.core.registry import register_task

    register_task(
        "image_classification",
        module="recipezoo.vision.task:ImageClassifier",
        runtime="recipezoo.runtime.vision",
        predictor="recipezoo.vision.predict:predict_images",
        inputs=("image",),
    )

A LightningModule may also name its task itself with a ``task_name`` class attribute.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from recipezoo.core.errors import ConfigError

log = logging.getLogger("recipezoo")

ENTRY_POINT_GROUP = "recipezoo.tasks"


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, by name.

    Attributes:
        name: the task's name, as export metadata spells it (``metadata.json``'s ``task``).
        module: the LightningModule that trains it, ``"package.module:Class"``.
        runtime: the torch-free module serving its ONNX bundles, copied into them as ``loader.py`` (``None``: the
            bundle has no loader).
        predictor: ``"package.module:function"`` behind ``predict``: called as ``fn(source, input, output,
            batch_size=..., overwrite=..., **options)`` where ``source`` is a path or a :class:`~recipezoo.core.bundle.
            Loaded`, and ``options`` are the predict options (``column``, ``k``) its signature takes.
        inputs: the kinds of input its predictor reads (``image``, ``table``, ``text``, ``audio``...), for help texts
            and listings.
        metadata: facts written into every export bundle of the task (the module's own export metadata wins).
        functions: further named entry points of the task (``"package.module:function"``), e.g. ``predict_paths``.
    """

    name: str
    module: str
    runtime: str | None = None
    predictor: str | None = None
    inputs: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    functions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __hash__(self) -> int:  # the mappings are not hashable; the name and module identify a spec
        return hash((self.name, self.module))

    @property
    def target(self) -> str:
        """The module class as Hydra's ``_target_`` spells it (``package.module.Class``)."""
        return self.module.replace(":", ".")

    def module_class(self) -> type:
        """The LightningModule class (imports its module)."""
        return resolve(self.module)

    def predictor_fn(self) -> Callable[..., Any]:
        if not self.predictor:
            raise ConfigError(f"task '{self.name}' registers no predictor; it cannot predict.")
        return resolve(self.predictor)

    def function(self, name: str) -> Callable[..., Any]:
        """A further named entry point (see ``functions``)."""
        if name not in self.functions:
            raise ConfigError(
                f"task '{self.name}' has no '{name}'; it offers: {', '.join(self.functions) or 'nothing more'}."
            )
        return resolve(self.functions[name])


_TASKS: dict[str, TaskSpec] = {}
_discovered = False


def resolve(path: str) -> Any:
    """The object an import string names: ``"package.module:Name"`` (or ``"package.module.Name"``)."""
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def register_task(
    name: str,
    module: str,
    *,
    runtime: str | None = None,
    predictor: str | None = None,
    inputs: tuple[str, ...] | list[str] = (),
    metadata: Mapping[str, Any] | None = None,
    functions: Mapping[str, str] | None = None,
    replace: bool = False,
) -> TaskSpec:
    """Register a task (see :class:`TaskSpec` for the arguments) and return its spec.

    Registering the same spec again is a no-op (a module imported twice); a different spec under a taken name raises
    ``ValueError`` unless ``replace``.
    """
    if ":" not in module:
        raise ValueError(f"module must be 'package.module:Class', got {module!r}")
    spec = TaskSpec(
        name=name,
        module=module,
        runtime=runtime,
        predictor=predictor,
        inputs=tuple(inputs),
        metadata=MappingProxyType(dict(metadata or {})),
        functions=MappingProxyType(dict(functions or {})),
    )
    old = _TASKS.get(name)
    if old is not None and old != spec and not replace:
        raise ValueError(f"task '{name}' is already registered (by {old.module}); pass replace=True to replace it.")
    _TASKS[name] = spec
    return spec


def unregister_task(name: str) -> None:
    """Forget a task (tests that register toy tasks clean up with this)."""
    _TASKS.pop(name, None)


def discover() -> None:
    """Import every ``recipezoo.<package>.tasks`` module and the ``recipezoo.tasks`` entry points, once.

    Packages without a ``tasks`` module are not imported at all.
    """
    global _discovered
    if _discovered:
        return
    _discovered = True  # set first: a tasks module that looks a task up must not start discovery again
    import recipezoo

    try:
        for info in pkgutil.iter_modules(recipezoo.__path__):
            if not info.ispkg:
                continue
            found = info.module_finder.find_spec(f"recipezoo.{info.name}")  # type: ignore[call-arg]
            locations = found.submodule_search_locations if found is not None else None
            if locations and any(m.name == "tasks" for m in pkgutil.iter_modules(locations)):
                importlib.import_module(f"recipezoo.{info.name}.tasks")
    except BaseException:
        _discovered = False  # a broken tasks module fails every look-up, not only the first one
        raise
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
            if callable(loaded):  # a function that registers; a module registers on import
                loaded()
        except Exception as e:  # another package's bug must not stop recipezoo's own tasks
            log.warning("Could not load the tasks of entry point %r (%s: %s)", ep.value, type(e).__name__, e)


def tasks() -> dict[str, TaskSpec]:
    """Every registered task, by name (sorted)."""
    discover()
    return dict(sorted(_TASKS.items()))


def get_task(name: str) -> TaskSpec:
    """The spec of task ``name``; :class:`ConfigError` naming the known tasks when there is none."""
    discover()
    if name not in _TASKS:
        raise ConfigError(f"no registered task '{name}'; known tasks: {', '.join(sorted(_TASKS))}.")
    return _TASKS[name]


def task_for_module(obj: type | object | str) -> TaskSpec | None:
    """The task a LightningModule trains: from a class, an instance, or a ``_target_`` string; ``None`` if none.

    A class's own ``task_name`` wins; else the class or its nearest registered base class. A ``_target_`` string that
    matches a registered module is answered without importing anything.
    """
    discover()
    if isinstance(obj, str):
        target = obj.replace(":", ".")
        for spec in _TASKS.values():
            if spec.target == target:
                return spec
        try:
            obj = resolve(obj)
        except (ImportError, AttributeError, ValueError):
            return None
    cls = obj if isinstance(obj, type) else type(obj)
    named = getattr(cls, "task_name", None)
    if isinstance(named, str) and named in _TASKS:
        return _TASKS[named]
    by_target = {spec.target: spec for spec in _TASKS.values()}
    for base in cls.__mro__:
        spec = by_target.get(f"{base.__module__}.{base.__qualname__}")
        if spec is not None:
            return spec
    return None
