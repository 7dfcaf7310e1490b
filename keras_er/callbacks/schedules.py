"""Sparsity schedules for `keras_er.callbacks.MagnitudePruning`.

Pure Python: a schedule maps a training step (the number of optimizer steps
taken so far) to ``(should_prune, sparsity)``, with the same semantics as
``tensorflow_model_optimization.sparsity.keras.ConstantSparsity`` and
``PolynomialDecay``: pruning happens at steps ``begin_step``,
``begin_step + frequency``, ... up to ``end_step`` inclusive (``end_step=-1``
means no end, for `ConstantSparsity` only).

`as_pruning_schedule` turns a tfmot schedule object into the equivalent
schedule here by reading its attributes, so tfmot never has to be imported by
keras_er (importing it sets ``TF_USE_LEGACY_KERAS``).
"""

import math

import numpy as np


def _check_step(value, name, allow_minus_one=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}.")
    value = int(value)
    if value < 0 and not (allow_minus_one and value == -1):
        allowed = "-1 or >= 0" if allow_minus_one else ">= 0"
        raise ValueError(f"{name} must be {allowed}, got {value}.")
    return value


def _check_sparsity(value, name):
    try:
        if isinstance(value, (bool, np.bool_, str, bytes)):
            raise TypeError  # True == 1.0 and "0.5" parses: both mistakes.
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a float in [0, 1), got {value!r}. A sparsity "
            "is the fraction of weights pruned: e.g. 0.9 keeps 10%."
        ) from None
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"{name} must be in [0, 1), got {value}. A sparsity is the "
            "fraction of weights pruned: e.g. 0.9 keeps 10%."
        )
    return value


class PruningSchedule:
    """Base class: ``schedule(step) -> (should_prune, sparsity)``.

    Subclasses set ``begin_step``, ``end_step`` and ``frequency`` and
    implement `sparsity`.
    """

    def _init_steps(self, begin_step, end_step, frequency, allow_no_end):
        self.begin_step = _check_step(begin_step, "begin_step")
        self.end_step = _check_step(end_step, "end_step", allow_no_end)
        if self.end_step == -1 and not allow_no_end:
            raise ValueError("end_step cannot be -1 for this schedule.")
        if self.end_step != -1 and self.end_step < self.begin_step:
            raise ValueError(
                f"end_step ({self.end_step}) must be >= begin_step "
                f"({self.begin_step})."
            )
        self.frequency = _check_step(frequency, "frequency")
        if self.frequency == 0:
            raise ValueError("frequency must be > 0.")

    def should_prune(self, step):
        """Whether the mask is updated at ``step``.

        Args:
            step: Number of training steps taken so far.

        Returns:
            A bool.
        """
        step = int(step)
        in_range = step >= self.begin_step and (
            self.end_step < 0 or step <= self.end_step
        )
        return in_range and (step - self.begin_step) % self.frequency == 0

    def sparsity(self, step):
        """The target sparsity at ``step`` (a float in [0, 1))."""
        raise NotImplementedError

    @property
    def final_sparsity_value(self):
        """The sparsity the schedule ends at."""
        raise NotImplementedError

    def __call__(self, step):
        """Returns ``(should_prune, sparsity)`` for ``step``."""
        return self.should_prune(step), self.sparsity(step)

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ConstantSparsity(PruningSchedule):
    """The same target sparsity at every pruning step.

    Args:
        target_sparsity: Fraction of kernel entries pruned, in ``[0, 1)``.
        begin_step: First step at which the mask is updated.
        end_step: Last step at which it may be updated; ``-1`` for no end.
        frequency: Update the mask every ``frequency`` steps.

    Raises:
        ValueError: For a sparsity outside ``[0, 1)``, negative steps,
            ``end_step < begin_step`` or ``frequency <= 0``.

    Example:

    ```python
    schedule = ConstantSparsity(0.9, begin_step=0, frequency=100)
    schedule(0)  # (True, 0.9)
    schedule(50)  # (False, 0.9)
    ```
    """

    def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
        self.target_sparsity = _check_sparsity(
            target_sparsity, "target_sparsity"
        )
        self._init_steps(begin_step, end_step, frequency, allow_no_end=True)

    def sparsity(self, step):
        return self.target_sparsity

    @property
    def final_sparsity_value(self):
        return self.target_sparsity

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


class PolynomialDecay(PruningSchedule):
    """Zhu & Gupta (2017): sparsity rises fast, then levels off.

    ``s(t) = s_f + (s_i - s_f) * (1 - p) ** power`` with
    ``p = clip((t - begin_step) / (end_step - begin_step), 0, 1)``.

    Args:
        initial_sparsity: Sparsity at ``begin_step``, in ``[0, 1)``.
        final_sparsity: Sparsity from ``end_step`` on, in ``[0, 1)``.
        begin_step: First step at which the mask is updated.
        end_step: Last step at which the mask is updated (``-1`` is not
            allowed). Only steps ``begin_step + i * frequency`` prune, so
            make ``end_step - begin_step`` a multiple of ``frequency`` for
            the final sparsity to be applied exactly (as in tfmot).
        power: Exponent of the decay (3 in the paper).
        frequency: Update the mask every ``frequency`` steps.

    Raises:
        ValueError: For a sparsity outside ``[0, 1)``, bad steps or
            ``frequency <= 0``.

    Example:

    ```python
    schedule = PolynomialDecay(0.5, 0.9, begin_step=0, end_step=1000)
    schedule(1000)  # (True, 0.9)
    ```
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        self.initial_sparsity = _check_sparsity(
            initial_sparsity, "initial_sparsity"
        )
        self.final_sparsity = _check_sparsity(final_sparsity, "final_sparsity")
        if self.final_sparsity < self.initial_sparsity:
            raise ValueError(
                f"final_sparsity ({self.final_sparsity}) must be >= "
                f"initial_sparsity ({self.initial_sparsity}): magnitude "
                "pruning only removes weights. Swap the two values."
            )
        try:
            if isinstance(power, (bool, np.bool_, str, bytes)):
                raise TypeError
            self.power = float(power)
        except (TypeError, ValueError):
            raise ValueError(
                f"power must be a positive number (3 in Zhu & Gupta), got "
                f"{power!r}."
            ) from None
        if not math.isfinite(self.power) or self.power <= 0:
            raise ValueError(
                f"power must be a finite number > 0 (3 in Zhu & Gupta), got "
                f"{power!r}."
            )
        self._init_steps(begin_step, end_step, frequency, allow_no_end=False)

    def sparsity(self, step):
        span = self.end_step - self.begin_step
        if span == 0:
            progress = 1.0 if step >= self.begin_step else 0.0
        else:
            progress = min(1.0, max(0.0, (int(step) - self.begin_step) / span))
        return self.final_sparsity + (
            self.initial_sparsity - self.final_sparsity
        ) * (1.0 - progress) ** self.power

    @property
    def final_sparsity_value(self):
        return self.final_sparsity

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


def as_pruning_schedule(schedule):
    """Returns the keras_er schedule equivalent to ``schedule``.

    Args:
        schedule: A keras_er `PruningSchedule` (returned as is), or an object
            with the attributes of tfmot's ``PolynomialDecay``
            (``initial_sparsity``, ``final_sparsity``, ``begin_step``,
            ``end_step``, ``power``, ``frequency``) or ``ConstantSparsity``
            (``target_sparsity``, ``begin_step``, ``end_step``,
            ``frequency``), such as the tfmot objects themselves.

    Returns:
        A `PruningSchedule`.

    Raises:
        ValueError: If ``schedule`` is none of these, or its values are
            invalid.

    Example:

    ```python
    import tensorflow_model_optimization as tfmot
    tf_schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.9, 0, 1000)
    as_pruning_schedule(tf_schedule)  # keras_er PolynomialDecay
    ```
    """
    if isinstance(schedule, PruningSchedule):
        return schedule
    poly = (
        "initial_sparsity", "final_sparsity", "begin_step", "end_step",
        "power", "frequency",
    )
    constant = ("target_sparsity", "begin_step", "end_step", "frequency")
    if all(hasattr(schedule, name) for name in poly):
        return PolynomialDecay(
            **{name: _plain(getattr(schedule, name)) for name in poly}
        )
    if all(hasattr(schedule, name) for name in constant):
        return ConstantSparsity(
            **{name: _plain(getattr(schedule, name)) for name in constant}
        )
    raise ValueError(
        "schedule must be a keras_er.callbacks.schedules PolynomialDecay or "
        "ConstantSparsity, or a tensorflow_model_optimization "
        f"PolynomialDecay / ConstantSparsity; got {schedule!r}."
    )


def _plain(value):
    # tfmot accepts numpy scalars (or even 0-d tensors); make them Python.
    array = np.asarray(value)
    if array.ndim != 0:
        raise ValueError(f"Expected a scalar schedule value, got {value!r}.")
    if np.issubdtype(array.dtype, np.integer):
        return int(array)
    if np.issubdtype(array.dtype, np.floating):
        value = float(array)
        # Steps given as integral floats (1000.0) are fine.
        return int(value) if value.is_integer() else value
    return value
