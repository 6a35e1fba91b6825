"""Parameter, Module, Sequential and ``no_grad``.

A layer calls ``F.op`` in ``forward``, pushes the cache, and in ``backward`` pops it, ADDS each
parameter gradient into ``p.grad`` and returns the input gradient. Caches form a stack, so a
module used twice in one forward pass backpropagates correctly (backward runs in reverse order).
"""
from __future__ import annotations

import contextlib
import json
from collections import OrderedDict

import numpy as np

from ..backend import get_array_module, to_device

__all__ = ["Parameter", "Module", "Sequential", "no_grad", "is_grad_enabled"]

_GRAD_ENABLED = [True]


@contextlib.contextmanager
def no_grad():
    """Inside ``with no_grad():`` modules cache nothing (inference: less memory, no backward)."""
    _GRAD_ENABLED.append(False)
    try:
        yield
    finally:
        _GRAD_ENABLED.pop()


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``."""
    return _GRAD_ENABLED[-1]


class Parameter:
    """A trainable array ``.data`` and its accumulated gradient ``.grad`` (same shape, dtype, device)."""

    def __init__(self, data):
        xp = get_array_module(data)
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter: data must be a float array, got dtype {data.dtype}")
        self.data = data
        self.grad = xp.zeros_like(data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype})"


class Module:
    """Base class: registers Parameters and submodules found in attributes (and lists of them)."""

    def __init__(self):
        self.training = True
        self._caches = []
        self._buffers = []  # names of attributes holding non-trainable state (running statistics)

    # -- the cache stack ------------------------------------------------------------------
    def push(self, cache) -> None:
        """Save a forward cache for backward (nothing is saved inside ``no_grad``)."""
        if is_grad_enabled():
            self._caches.append(cache)

    def pop(self):
        """The most recent forward cache; a clear error when backward comes before forward."""
        if not self._caches:
            raise RuntimeError(f"{type(self).__name__}.backward: no cached forward pass (call forward "
                               "first, outside no_grad(), once per backward)")
        return self._caches.pop()

    @property
    def caches(self) -> tuple:
        """The forward caches waiting for their backward, oldest first (read-only; for inspection)."""
        return tuple(self._caches)

    def clear_caches(self) -> None:
        """Drop every cached forward pass in this module and its children."""
        for m in self.modules():
            m._caches.clear()

    # -- calling -------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- registration ----------------------------------------------------------------------
    def register_buffer(self, name: str, value) -> None:
        """Non-trainable state saved in ``state_dict`` and moved by ``to`` (e.g. running_mean)."""
        setattr(self, name, value)
        if name not in self._buffers:
            self._buffers.append(name)

    def _children(self):
        """(name, item) for every Parameter / Module in attributes, lists and tuples, in order."""
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, Module)):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    if isinstance(v, (Parameter, Module)):
                        yield f"{name}.{i}", v

    def named_modules(self, prefix: str = ""):
        """(name, module) for this module and every descendant, each module once."""
        seen = set()

        def walk(mod, pre):
            if id(mod) in seen:
                return
            seen.add(id(mod))
            yield pre, mod
            for name, child in mod._children():
                if isinstance(child, Module):
                    yield from walk(child, f"{pre}.{name}" if pre else name)

        yield from walk(self, prefix)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self):
        """(dotted name, Parameter) for every parameter, each Parameter once even when shared."""
        seen = set()
        for pre, mod in self.named_modules():
            for name, item in mod._children():
                if isinstance(item, Parameter) and id(item) not in seen:
                    seen.add(id(item))
                    yield (f"{pre}.{name}" if pre else name), item

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    # -- state -----------------------------------------------------------------------------
    def named_buffers(self):
        for pre, mod in self.named_modules():
            for name in mod._buffers:
                yield (f"{pre}.{name}" if pre else name), mod, name

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer as NumPy arrays, keyed by dotted name."""
        sd = OrderedDict()
        for name, p in self.named_parameters():
            sd[name] = np.array(to_device(p.data, "cpu"), copy=True)
        for full, mod, name in self.named_buffers():
            sd[full] = np.array(to_device(getattr(mod, name), "cpu"), copy=True)
        return sd

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays into parameters and buffers (in place, keeping device and dtype)."""
        own = {n: ("param", p) for n, p in self.named_parameters()}
        own.update({full: ("buffer", (mod, name)) for full, mod, name in self.named_buffers()})
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, (kind, target) in own.items():
            if key not in state:
                continue
            value = np.asarray(state[key])
            current = target.data if kind == "param" else getattr(*target)
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key} has shape {tuple(current.shape)} "
                                 f"in the model but {tuple(value.shape)} in the state")
            xp = get_array_module(current)
            current[...] = xp.asarray(value, dtype=current.dtype)
        return self

    def config(self) -> dict:
        """JSON-serialisable description saved beside the weights (subclasses may extend)."""
        return {"class": type(self).__name__}

    def save(self, path) -> None:
        """Write weights and buffers to ``path`` (.npz) plus a JSON config entry; never pickles."""
        sd = self.state_dict()
        meta = {"format": "scratchnet-npz-1", "config": self.config(), "keys": list(sd)}
        arrays = {f"arr_{i}": v for i, v in enumerate(sd.values())}
        arrays["__meta__"] = np.array(json.dumps(meta))  # a unicode string array, not an object
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    def load(self, path):
        """Load weights saved by ``save`` into this module (``allow_pickle=False``: no code runs)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if "__meta__" not in z.files:
                    raise ValueError(f"{type(self).__name__}.load: {path} is not a scratchnet checkpoint (no __meta__)")
                meta = json.loads(str(z["__meta__"]))
                state = OrderedDict((k, z[f"arr_{i}"]) for i, k in enumerate(meta["keys"]))
        except ValueError as e:
            if "pickle" in str(e).lower() or "Object arrays" in str(e):
                raise ValueError(f"{type(self).__name__}.load: {path} contains pickled objects; "
                                 "scratchnet checkpoints never unpickle") from e
            raise
        saved = meta.get("config", {}).get("class")
        if saved is not None and saved != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load: checkpoint was saved from a {saved}")
        return self.load_state_dict(state)

    def to(self, device: str):
        """Move parameters, gradients and buffers to 'cpu' or 'gpu' (in place; returns self)."""
        for p in self.parameters():
            p.data = to_device(p.data, device)
            p.grad = to_device(p.grad, device)
        for _, mod, name in self.named_buffers():
            setattr(mod, name, to_device(getattr(mod, name), device))
        self.clear_caches()
        return self

    def astype(self, dtype):
        """Cast parameters, gradients and float buffers to ``dtype`` (float64 for gradchecks)."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = p.grad.astype(dtype)
        for _, mod, name in self.named_buffers():
            v = getattr(mod, name)
            if hasattr(v, "dtype") and v.dtype.kind == "f":
                setattr(mod, name, v.astype(dtype))
        self.clear_caches()
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = [(n, c) for n, c in self._children() if isinstance(c, Module)]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not kids:
            return head + ")"
        body = "\n".join(f"  ({n}): " + repr(c).replace("\n", "\n  ") for n, c in kids)
        return f"{head}\n{body}\n)"


class Sequential(Module):
    """Children applied in order; backward walks them in reverse."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)
