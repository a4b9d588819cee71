"""``freeze_startup_objects``: what start-up made leaves the collector's full passes,
unless ``TODO_APP_GC_FREEZE`` says no."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import todo_app
from todo_app.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (the test process lives on)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class Survivor:
    """A start-up object in a reference cycle: only the cyclic collector sees it."""

    def __init__(self) -> None:
        self.me = self


def test_start_up_objects_are_frozen_out_of_full_collections() -> None:
    survivor = Survivor()
    assert todo_app.freeze_startup_objects(Settings()) > 0
    # Frozen objects are in no generation the collector walks.
    assert not any(survivor is obj for obj in gc.get_objects())
    gc.unfreeze()
    assert any(survivor is obj for obj in gc.get_objects())


def test_garbage_is_collected_before_the_freeze() -> None:
    import weakref

    garbage = Survivor()
    gone = weakref.ref(garbage)
    del garbage
    todo_app.freeze_startup_objects(Settings())
    assert gone() is None, "unreachable start-up garbage must not be frozen for ever"


def test_the_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TODO_APP_GC_FREEZE", "0")
    assert get_settings().gc_freeze is False
    assert todo_app.freeze_startup_objects() == 0
    assert gc.get_freeze_count() == 0
    monkeypatch.setenv("TODO_APP_GC_FREEZE", "1")
    assert todo_app.freeze_startup_objects() > 0
