"""What the sparse-training callbacks share: the ``density`` property.

Every callback (`MagnitudePruning`, `IMP`, `RiGL` / `SET`, `EdgePopup`,
`STR`) has a ``density`` property: the current overall density of the
kernels it prunes (masked, or effective for STR). The value is a `Density`,
a float that can still be called the way the older ``density()`` methods
were (``callback.density()``, ``STR.density(model)``).
"""


class Density(float):
    """A density (a float) that is also callable, for the older method form.

    ``value()`` returns the float; ``value(model)`` the density of another
    model, computed by the callback's own rule.
    """

    def __new__(cls, value, of=None):
        obj = super().__new__(cls, value)
        obj._of = of
        return obj

    def __call__(self, model=None):
        if model is None:
            return float(self)
        if self._of is None:
            raise TypeError("This density does not take a model.")
        return float(self._of(model))


class DensityOfModel:
    """``density`` descriptor: a `Density` on an instance, and on the class
    the function ``fn(model)`` (so ``Callback.density(model)`` works).

    Args:
        fn: ``fn(model) -> float``.
    """

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self.fn
        model = getattr(obj, "model", None)
        if model is None:
            return None
        return Density(self.fn(model), of=self.fn)
