"""Lightning's console output goes through our handlers once, without its product tips."""

import logging
import warnings

import lightning.pytorch as L

from recipezoo.core.logs import route_lightning_logs


def test_lightning_lines_once_and_no_tips(caplog):
    route_lightning_logs()
    route_lightning_logs()  # idempotent
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_model_summary=False)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("GPU available" in m for m in messages) == 1, messages
    assert not any(m.startswith("💡") for m in messages), messages
    assert not logging.getLogger("lightning.pytorch").handlers


def test_leafspec_deprecation_silenced():
    route_lightning_logs()
    from torch.utils._pytree import LeafSpec

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        route_lightning_logs()  # re-installs the filter after simplefilter above
        LeafSpec()
    assert not [w for w in caught if "LeafSpec" in str(w.message)]
