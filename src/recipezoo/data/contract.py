"""What the entry points rely on in a DataModule: the contract every domain's DataModule keeps.

``train`` restores a resumed checkpoint's ``data_info`` and saves ``info`` into the new one; ``evaluate`` restores a
checkpoint's ``data_info`` and reads any split through ``eval_dataloader``; checkpoints store ``files`` (fitted
vocabularies, id maps) when the DataModule has them; ``benchmark`` iterates ``train_dataloader``. A DataModule is
checked against it structurally (``isinstance(dm, DataModuleContract)``), not by inheritance.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class DataModuleContract(Protocol):
    """A Lightning DataModule as recipezoo's entry points use it.

    ``restore(info)`` adopts what a checkpoint's data fitted (labels, preprocessing, tokenizer) before ``setup``,
    so it is reused, never refitted; an empty ``info`` changes nothing. ``info`` (after ``setup``) is what the model,
    the checkpoint and exports need to know about the data. ``describe()`` names the data in messages.
    ``eval_dataloader(split)`` serves ``train``, ``val`` or ``test`` in a fixed order without augmentation.
    """

    def prepare_data(self) -> None: ...

    def setup(self, stage: str | None = None) -> None: ...

    def restore(self, info: dict[str, Any] | None) -> None: ...

    def describe(self) -> str: ...

    @property
    def info(self) -> dict[str, Any]: ...

    def train_dataloader(self) -> Any: ...

    def val_dataloader(self) -> Any: ...

    def test_dataloader(self) -> Any: ...

    def eval_dataloader(self, split: str) -> Any: ...


@runtime_checkable
class HasFiles(Protocol):
    """A DataModule whose fitted state includes files (tokenizer, id maps) that checkpoints and exports carry."""

    @property
    def files(self) -> dict[str, str | bytes]: ...


__all__ = ["DataModuleContract", "HasFiles"]
