import sys

import pytest

from scratchnet._alloc import keep_freed_memory


def test_opt_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv("SCRATCHNET_MALLOC", "default")
    assert keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_applies_on_glibc(monkeypatch):
    monkeypatch.delenv("SCRATCHNET_MALLOC", raising=False)
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert keep_freed_memory() is True
