"""The patch machinery: exact restore, nesting, idempotence, hooks, thread safety."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import threadpatch
from threadpatch import _patching, patches
from threadpatch._core import _natives

if TYPE_CHECKING:
    from collections.abc import Iterator

# -- a synthetic patch set, so the mechanics are tested apart from the real tables --


class Base:
    def inherited(self) -> str:
        return "base"


class Target(Base):
    def own(self) -> str:
        return "own"


def _ours_own(self: object) -> str:
    return "ours-own"


def _ours_inherited(self: object) -> str:
    return "ours-inherited"


def _ours_func() -> str:
    return "ours-func"


@pytest.fixture
def fake_set(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A patch set "fake" whose target module is ``tp_fake_target``."""
    target = types.ModuleType("tp_fake_target")
    target.func = lambda: "func"  # type: ignore[attr-defined]
    target.Target = Target  # type: ignore[attr-defined]
    table = types.ModuleType("threadpatch.patches.fake")
    table.TARGET = "tp_fake_target"  # type: ignore[attr-defined]
    table.REPLACEMENTS = {"func": _ours_func, "not_there": _ours_func}  # type: ignore[attr-defined]
    table.CLASS_REPLACEMENTS = {  # type: ignore[attr-defined]
        "Target": {"own": _ours_own, "inherited": _ours_inherited, "absent": _ours_own}
    }
    monkeypatch.setitem(sys.modules, "tp_fake_target", target)
    monkeypatch.setitem(sys.modules, "threadpatch.patches.fake", table)
    monkeypatch.setitem(_patching._sets, "fake", _patching._PatchSet("fake", "tp_fake_target"))
    monkeypatch.setattr(_patching, "FLAGS", (*_patching.FLAGS, "fake"))
    yield target
    threadpatch.unpatch_all()


ONLY_FAKE = {flag: False for flag in patches.TARGETS}


def test_flags_and_tables_agree() -> None:
    assert threadpatch.patch_all.__name__ == "patch_all"
    assert tuple(patches.TARGETS) == _patching.FLAGS
    for flag, target in patches.TARGETS.items():
        path = Path(patches.__file__).with_name(f"{flag}.py")
        if not path.exists():
            pytest.skip(f"patch table {flag} not written yet")
        table = _patching._load_table(flag)
        assert target == table.TARGET


def test_patch_and_restore_exactly(fake_set: types.ModuleType) -> None:
    before_module = dict(vars(fake_set))
    before_class = dict(vars(Target))
    original_func = fake_set.func
    threadpatch.patch_all(**ONLY_FAKE, fake=True)
    assert threadpatch.is_patched("fake")
    assert fake_set.func is _ours_func
    assert not hasattr(fake_set, "not_there")  # names the module lacks are not invented
    assert Target().own() == "ours-own"
    assert Target().inherited() == "ours-inherited"
    assert not hasattr(Target, "absent")
    assert Base().inherited() == "base"
    assert threadpatch.original(fake_set, "func") is original_func
    assert threadpatch.original("tp_fake_target", "func") is original_func
    assert threadpatch.original(Target, "inherited") is vars(Base)["inherited"]
    assert threadpatch.original("tp_fake_target.Target", "own") is before_class["own"]
    threadpatch.unpatch_all()
    assert not threadpatch.is_patched("fake")
    assert vars(fake_set) == before_module
    assert all(vars(fake_set)[k] is v for k, v in before_module.items())
    assert dict(vars(Target)) == before_class  # "inherited" deleted again, not set
    assert all(vars(Target)[k] is v for k, v in before_class.items())
    assert threadpatch.original(fake_set, "func") is original_func


def test_patch_all_is_idempotent(fake_set: types.ModuleType) -> None:
    original_func = fake_set.func
    threadpatch.patch_all(**ONLY_FAKE, fake=True)
    threadpatch.patch_all(**ONLY_FAKE, fake=True)
    assert _patching._sets["fake"].depth == 1
    threadpatch.unpatch_all()
    assert fake_set.func is original_func
    threadpatch.unpatch_all()  # nothing patched: a no-op
    assert fake_set.func is original_func


def test_nesting_is_reference_counted(fake_set: types.ModuleType) -> None:
    original_func = fake_set.func
    with threadpatch.patched(**ONLY_FAKE, fake=True):
        assert fake_set.func is _ours_func
        with threadpatch.patched(**ONLY_FAKE, fake=True):
            threadpatch.patch_all(**ONLY_FAKE, fake=True)
            assert _patching._sets["fake"].depth == 3
        assert fake_set.func is _ours_func
        threadpatch.unpatch_all()
        assert fake_set.func is _ours_func  # the outer block still holds it
    assert fake_set.func is original_func
    # patch_all outlives a block opened after it
    threadpatch.patch_all(**ONLY_FAKE, fake=True)
    with threadpatch.patched(**ONLY_FAKE, fake=True):
        pass
    assert fake_set.func is _ours_func
    threadpatch.unpatch_all()
    assert fake_set.func is original_func


def test_patched_instance_can_be_reentered(fake_set: types.ModuleType) -> None:
    block = threadpatch.patched(**ONLY_FAKE, fake=True)
    with block, block:
        assert _patching._sets["fake"].depth == 2
    assert _patching._sets["fake"].depth == 0
    with block:
        assert fake_set.func is _ours_func
    assert "fake" in repr(block)


def test_patched_restores_on_exception(fake_set: types.ModuleType) -> None:
    original_func = fake_set.func
    with pytest.raises(KeyError), threadpatch.patched(**ONLY_FAKE, fake=True):
        raise KeyError("boom")
    assert fake_set.func is original_func


def test_failed_apply_rolls_back(
    fake_set: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_func = fake_set.func
    table = sys.modules["threadpatch.patches.fake"]
    monkeypatch.setattr(table, "CLASS_REPLACEMENTS", {"NoSuchClass": {"x": 1}})
    with pytest.raises(AttributeError):
        threadpatch.patch_all(**ONLY_FAKE, fake=True)
    assert fake_set.func is original_func
    assert not threadpatch.is_patched("fake")


def test_someone_patching_over_us_is_left_alone(fake_set: types.ModuleType) -> None:
    threadpatch.patch_all(**ONLY_FAKE, fake=True)

    def theirs() -> str:
        return "theirs"

    fake_set.func = theirs  # type: ignore[attr-defined]
    with pytest.warns(threadpatch.ThreadpatchWarning, match=r"tp_fake_target\.func"):
        threadpatch.unpatch_all()
    assert fake_set.func is theirs
    assert vars(Target).get("own") is not _ours_own  # the rest was restored


def test_flag_validation() -> None:
    with pytest.raises(TypeError, match="unknown patch flag 'sockets'"):
        threadpatch.patch_all(sockets=False)
    with pytest.raises(TypeError, match="True or False"):
        threadpatch.patched(time=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown patch flag"):
        threadpatch.is_patched("nope")
    assert not threadpatch.is_patched()


def test_module_imported_later_is_patched_on_import(
    fake_set: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tp_late_target.py").write_text("def func():\n    return 'late'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tp_late_target", raising=False)
    monkeypatch.setitem(_patching._sets, "fake", _patching._PatchSet("fake", "tp_late_target"))
    table = sys.modules["threadpatch.patches.fake"]
    monkeypatch.setattr(table, "TARGET", "tp_late_target")
    monkeypatch.setattr(table, "CLASS_REPLACEMENTS", {})
    threadpatch.patch_all(**ONLY_FAKE, fake=True)
    assert threadpatch.is_patched("fake")
    import tp_late_target  # type: ignore[import-not-found]

    assert tp_late_target.func is _ours_func
    threadpatch.unpatch_all()
    assert tp_late_target.func() == "late"


def test_hook_of_a_set_no_longer_active_does_nothing(
    fake_set: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tp_later_target.py").write_text("def func():\n    return 'later'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(_patching._sets, "fake", _patching._PatchSet("fake", "tp_later_target"))
    monkeypatch.setattr(sys.modules["threadpatch.patches.fake"], "CLASS_REPLACEMENTS", {})
    with threadpatch.patched(**ONLY_FAKE, fake=True):
        pass
    monkeypatch.delitem(sys.modules, "tp_later_target", raising=False)
    import tp_later_target  # type: ignore[import-not-found]

    assert tp_later_target.func() == "later"


def test_concurrent_patched_blocks(fake_set: types.ModuleType) -> None:
    original_func = fake_set.func
    n, rounds = 6, 200
    barrier = _natives.allocate_lock()
    barrier.acquire()
    seen: list[bool] = []
    done: list[int] = []

    def worker() -> None:
        barrier.acquire()
        barrier.release()
        for _ in range(rounds):
            with threadpatch.patched(**ONLY_FAKE, fake=True):
                seen.append(fake_set.func is _ours_func)
        done.append(1)

    threads = [threadpatch.spawn(worker) for _ in range(n)]
    barrier.release()
    for t in threads:
        t.join(timeout=30)
    assert len(done) == n
    assert all(seen)
    assert len(seen) == n * rounds
    assert fake_set.func is original_func
    assert _patching._sets["fake"].depth == 0


def test_time_patch_round_trip() -> None:
    import time

    before = dict(vars(time))
    with threadpatch.patched(**{**ONLY_FAKE, "time": True}):
        assert time.sleep is not before["sleep"]
        assert threadpatch.original("time", "sleep") is before["sleep"]
    assert vars(time) == before
    assert all(vars(time)[k] is v for k, v in before.items())


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_patching_starts_no_hub_and_imports_no_curio() -> None:
    proc = _run("""
        import sys, threading
        import threadpatch
        from threadpatch._core import get_hub
        n = threading.active_count()
        threadpatch.patch_all()
        threadpatch.unpatch_all()
        threadpatch.patch_all()
        assert "curio" not in sys.modules, "curio imported"
        assert not get_hub()._started, "hub started"
        assert threading.active_count() == n
        print("ok")
    """)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_patch_from_a_non_main_thread_then_unpatch_from_main(fake_set: types.ModuleType) -> None:
    original_func = fake_set.func
    t = threadpatch.spawn(lambda: threadpatch.patch_all(**ONLY_FAKE, fake=True))
    t.join(timeout=10)
    assert fake_set.func is _ours_func
    threadpatch.unpatch_all()
    assert fake_set.func is original_func


def test_patch_all_is_all_or_nothing(
    fake_set: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    native_sleep = time.sleep
    monkeypatch.setattr(
        sys.modules["threadpatch.patches.fake"], "CLASS_REPLACEMENTS", {"NoSuchClass": {"x": 1}}
    )
    with pytest.raises(AttributeError):
        threadpatch.patch_all(**{**ONLY_FAKE, "time": True}, fake=True)
    assert time.sleep is native_sleep  # the set applied before the failing one is undone
    assert not threadpatch.is_patched()
