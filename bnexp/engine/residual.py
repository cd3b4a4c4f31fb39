"""Residual connections in a flat layer list: ``y = body(x) + shortcut(x)``.

A network stays one sequence of named layers (so the optimizer, state dicts,
folding and the probes see every layer as before); a residual block is
marked in it by three small layers that share one ``Junction``:

    Fork -> body layers -> [Shortcut -> projection layers] -> Add

- ``Fork`` keeps its input ``x`` and passes it on to the body.
- ``Shortcut`` (only for a projection) keeps the body's output and hands the
  projection layers the kept ``x`` instead.
- ``Add`` returns the body's output plus ``x`` (identity shortcut), or the
  kept body output plus the projection's (projection shortcut).

Backward runs the list in reverse, so each of them meets its gradient in the
opposite order: ``Add`` passes ``dy`` on and keeps it for the other branch;
``Shortcut`` keeps the projection's input gradient and hands the body ``dy``;
``Fork`` returns the body's input gradient plus the kept one.
"""

from __future__ import annotations

import numpy as np

from .layers import Layer

__all__ = ["Junction", "Fork", "Shortcut", "Add", "JUNCTION_LAYERS", "rebind"]


class Junction:
    """What a block's three marker layers hand each other within one pass."""

    def __init__(self) -> None:
        self.x: np.ndarray | None = None  # the block's input (Fork)
        self.body: np.ndarray | None = None  # the body's output (Shortcut, projection only)
        self.dx: np.ndarray | None = None  # the shortcut branch's gradient at x
        self.dbody: np.ndarray | None = None  # the upstream gradient of the body (projection)


class _Marker(Layer):
    """A layer that moves arrays through its block's junction; no params."""

    def __init__(self, junction: Junction, projection: bool = False) -> None:
        super().__init__()
        self.junction, self.projection = junction, projection

    def _kept(self, name: str) -> np.ndarray:
        value = getattr(self.junction, name)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}: its block's other half has not run")
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Fork(_Marker):
    """Start of a block: x -> x, kept for the shortcut. Backward: the body's
    input gradient plus the shortcut's."""

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self.junction.x, self.junction.dx = x, None
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = self._buf("dx", dy.shape, dy.dtype)
        np.add(dy, self._kept("dx"), out=dx)
        return dx


class Shortcut(_Marker):
    """Between a block's body and its projection: keeps the body's output and
    returns the block's input, which the projection layers then take."""

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self.junction.body = x
        return self._kept("x")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.junction.dx = dy  # the projection's gradient at the block's input
        return self._kept("dbody")


class Add(_Marker):
    """End of a block: the body's output plus the shortcut's (x itself, or the
    projection's output when ``projection``). Shapes must agree. On the
    compiled kernels the sum is one kernel pass, and ``forward_relu`` adds the
    ReLU that ends a block in the same pass (the same numbers as the two
    layers one after the other)."""

    def _other(self, x: np.ndarray) -> np.ndarray:
        """The other branch's output, checked against ``x``."""
        other = self._kept("body" if self.projection else "x")
        if other.shape != x.shape:
            body, short = (other, x) if self.projection else (x, other)
            raise ValueError(f"{self!r}: the body gives {body.shape} but the shortcut "
                             f"{short.shape}; a block that changes the shape needs a projection")
        return other

    def _compiled(self, x: np.ndarray, other: np.ndarray) -> bool:
        return (self.kernels is not None and x.dtype == other.dtype
                and x.flags.c_contiguous and other.flags.c_contiguous)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self._relu_y = None
        other = self._other(x)
        y = self._buf("y", x.shape, np.result_type(x.dtype, other.dtype))
        if self._compiled(x, other):
            self.kernels.add_forward(x, other, False, y)
        else:
            np.add(x, other, out=y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.projection:
            self.junction.dbody = dy  # the body's upstream gradient, handed on by Shortcut
        else:
            self.junction.dx = dy  # the identity shortcut's gradient at x
        return dy

    def forward_relu(self, x: np.ndarray, train: bool, relu: Layer) -> np.ndarray:
        """``relu.forward(self.forward(x, train))``, as one kernel pass where the
        compiled kernels take the arrays (then the output is kept for the mask)."""
        other = self._other(x)
        if not self._compiled(x, other):
            self._relu_y = None
            return relu.forward(self.forward(x, train), train)
        y = self._relu_y = self._buf("relu_y", x.shape, x.dtype)
        self.kernels.add_forward(x, other, True, y)
        return y

    def backward_relu(self, dy: np.ndarray, relu: Layer) -> np.ndarray:
        """The backward pass of ``forward_relu``: the ReLU's mask from the kept
        output (y > 0 exactly where the sum is), then the addition's."""
        y = getattr(self, "_relu_y", None)
        if y is None:
            return self.backward(relu.backward(dy))
        dx = self._buf("relu_dx", y.shape, y.dtype)
        self.kernels.relu_backward(np.ascontiguousarray(dy), y, dx)
        return self.backward(dx)

    def __repr__(self) -> str:
        return f"Add(projection={self.projection})"


JUNCTION_LAYERS = (Fork, Shortcut, Add)


def rebind(originals, twins) -> None:
    """Give replicas (``twins``, layer for layer) junctions of their own, one
    per junction the ``originals`` share, so that two replicas never hand
    each other arrays."""
    fresh: dict[int, Junction] = {}
    for old, new in zip(originals, twins):
        if isinstance(old, _Marker):
            new.junction = fresh.setdefault(id(old.junction), Junction())
