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


def _in_a_fresh_process(code, **env):
    import os
    import subprocess
    environ = {k: v for k, v in os.environ.items() if k != "SCRATCHNET_MALLOC"}
    environ.update(env)
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


SPY = """
import ctypes
calls = []
class SpyCDLL(ctypes.CDLL):  # records every C function looked up by name
    def __getattr__(self, name):
        calls.append(name)
        return super().__getattr__(name)
ctypes.CDLL = SpyCDLL
"""


def test_import_changes_no_allocator_setting():
    out = _in_a_fresh_process(SPY + "import scratchnet, scratchnet.train, scratchnet.models, scratchnet.cli\n"
                              "print('mallopt' in calls, scratchnet._alloc._applied)")
    assert out == "False None"


def test_import_applies_it_only_when_asked_and_fit_does():
    out = _in_a_fresh_process(SPY + "import scratchnet\nprint('mallopt' in calls)", SCRATCHNET_MALLOC="keep")
    assert out == ("True" if sys.platform.startswith("linux") else "False")
    out = _in_a_fresh_process(SPY + """
import numpy as np
import scratchnet as sn
from scratchnet import nn
from scratchnet.optim import SGD
before = 'mallopt' in calls
x, y = np.ones((4, 2), np.float32), np.array([0, 1, 0, 1])
model = nn.Linear(2, 2)
sn.train.fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=1, batch_size=2,
             disable=True)
print(before, sn._alloc._applied is not None)
""")
    assert out == "False True"
