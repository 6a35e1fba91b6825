"""Reshaping ops (no arithmetic, so backward only undoes the reshape). Legend: N batch."""
from __future__ import annotations

__all__ = ["flatten", "flatten_backward", "reshape", "reshape_backward"]


def flatten(x, *, start_axis=1):
    """(N, d1, d2, ...) → (N, d1·d2·...). Backward: dx = dy reshaped to x's shape."""
    y = x.reshape(x.shape[:start_axis] + (-1,))
    return y, (x.shape,)


def flatten_backward(dy, cache):
    (shape,) = cache
    return dy.reshape(shape)


def reshape(x, *, shape):
    """x viewed with a new ``shape`` (−1 allowed once). Backward: dx = dy reshaped back."""
    try:
        y = x.reshape(shape)
    except ValueError as e:
        raise ValueError(f"reshape: cannot view x of shape {tuple(x.shape)} as {tuple(shape)}") from e
    return y, (x.shape,)


reshape_backward = flatten_backward
