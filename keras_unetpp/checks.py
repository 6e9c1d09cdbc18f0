"""One rule for the numeric arguments of the public API: whole numbers are whole, numbers are finite.

``UNetPlusPlus(filters=(8.7, 16))`` used to build with 8 filters: a fraction was floored where a
typo was more likely. Every integer argument of the library (filters, classes, channels, sizes,
kernels, factors, steps) goes through [`whole_number()`][keras_unetpp.checks.whole_number], and
every float that must be a number (weights, rates) through
[`finite_number()`][keras_unetpp.checks.finite_number].
"""

from __future__ import annotations

import math
import numbers


def whole_number(value, name: str, minimum: int | None = None) -> int:
    """``value`` as an int; a fraction, a boolean, NaN or a non-number is refused, never floored.

    Args:
        value: The argument.
        name: Its name, for the message.
        minimum: The smallest value allowed (None: any).

    Returns:
        The int.

    Raises:
        ValueError: Naming the argument, the value and the rule.

    Examples:
        >>> whole_number(16.0, "filters")
        16
        >>> whole_number(8.7, "filters")
        Traceback (most recent call last):
        ...
        ValueError: filters must be a whole number, got 8.7 (it would be floored to 8).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    if not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r} (it would be floored to {int(value)}).")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return number


def finite_number(value, name: str, minimum: float | None = None) -> float:
    """``value`` as a float; NaN, infinity, a boolean or a non-number is refused.

    Args:
        value: The argument.
        name: Its name, for the message.
        minimum: The smallest value allowed (None: any).

    Returns:
        The float.

    Raises:
        ValueError: Naming the argument, the value and the rule.

    Examples:
        >>> finite_number(0.5, "head weight")
        0.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if minimum is not None and float(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return float(value)
