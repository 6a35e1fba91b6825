"""Reshaping ops (no arithmetic, so backward only undoes the reshape). Legend: N batch."""
from __future__ import annotations

from .._checks import check_grad

__all__ = ["flatten", "flatten_backward", "reshape", "reshape_backward"]


def flatten(x, *, start_axis=1):
    """(N, d1, d2, ...) → (N, d1·d2·...). Backward: dx = dy reshaped to x's shape."""
    y = x.reshape(x.shape[:start_axis] + (-1,))
    return y, (x.shape, y.shape, y.dtype)


def flatten_backward(dy, cache):
    shape, y_shape, dtype = cache
    check_grad("flatten_backward", "dy", dy, y_shape, dtype)
    return dy.reshape(shape)


def reshape(x, *, shape):
    """x viewed with a new ``shape`` (−1 allowed once). Backward: dx = dy reshaped back."""
    try:
        y = x.reshape(shape)
    except ValueError as e:
        raise ValueError(f"reshape: cannot view x of shape {tuple(x.shape)} as {tuple(shape)}") from e
    return y, (x.shape, y.shape, y.dtype)


def reshape_backward(dy, cache):
    shape, y_shape, dtype = cache
    check_grad("reshape_backward", "dy", dy, y_shape, dtype)
    return dy.reshape(shape)
