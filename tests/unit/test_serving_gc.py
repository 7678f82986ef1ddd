"""The served model and everything alive when it arrived are kept out of the cyclic garbage
collector's scans (gc.freeze), without ever keeping a replaced model's garbage."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sklambda.model import LoadedModel
from sklambda.serving import ModelHolder
from sklambda.settings import ServingSettings
from sklambda.store import ModelStore

pytestmark = pytest.mark.unit


def no_store() -> ModelStore:
    raise AssertionError("these tests never touch S3")


@pytest.fixture
def holder() -> Iterator[ModelHolder]:
    settings = ServingSettings(bucket="models", model_name="house-prices")
    made = ModelHolder(settings, no_store, freeze_gc=True)
    yield made
    made.reset()


class Cycle:
    """An object in a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


def test_a_served_model_is_out_of_the_collectors_scans(holder, loaded: LoadedModel) -> None:
    # GIVEN nothing frozen WHEN a model is served THEN it and what was alive are frozen
    holder.reset()
    assert gc.get_freeze_count() == 0
    holder.use(loaded)
    assert gc.get_freeze_count() > 0
    assert not any(obj is loaded for obj in gc.get_objects())  # generations 0-2 only


def test_a_holder_without_freeze_gc_never_freezes_nor_thaws(loaded: LoadedModel) -> None:
    # GIVEN another holder's model frozen (the predict function's)
    frozen = ModelHolder(ServingSettings(), no_store, freeze_gc=True)
    frozen.use(loaded)
    try:
        # WHEN a holder without freeze_gc (the batch function's) serves and is reset
        other = ModelHolder(ServingSettings(), no_store)
        other.use(LoadedModel(loaded.manifest, loaded.model))
        other.reset()
        # THEN the frozen objects stay frozen
        assert gc.get_freeze_count() > 0
        assert not any(obj is loaded for obj in gc.get_objects())
    finally:
        frozen.reset()
    assert gc.get_freeze_count() == 0


def test_only_the_predict_function_freezes() -> None:
    import predict_handler

    assert predict_handler.holder.freeze_gc


def test_forgetting_the_model_unfreezes_everything(holder, loaded: LoadedModel) -> None:
    holder.use(loaded)
    holder.reset()
    assert gc.get_freeze_count() == 0


def test_a_replaced_models_cyclic_garbage_is_freed(holder, loaded: LoadedModel) -> None:
    # GIVEN a cycle alive (frozen) when the first model was served, garbage since
    old = Cycle()
    gone = weakref.ref(old)
    holder.use(loaded)
    del old
    gc.collect()
    assert gone() is not None  # frozen: the collector does not see it
    # WHEN another model replaces it THEN the cycle is collected, and the new model frozen
    holder.use(LoadedModel(loaded.manifest, loaded.model))
    assert gone() is None
    assert gc.get_freeze_count() > 0
