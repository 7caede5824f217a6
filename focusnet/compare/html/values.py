"""Single values as HTML text for the compare report: escaping, numbers, p-values, data URIs.

Example:
    >>> escape("<b>"), num(0.81234), num(None), pvalue(0.0004)
    ('&lt;b&gt;', '0.812', 'n/a', '4.0e-04')
"""
from __future__ import annotations

import base64
import html
import math
from typing import Any, TypeGuard

__all__ = ["NUM", "data_value", "escape", "finite", "num", "png_uri", "pvalue", "scalar"]

#: The attribute of a right-aligned numeric cell.
NUM = ' class="num"'


def escape(x: Any) -> str:
    """``x`` as text, HTML-escaped (quotes too); ``None`` is the empty string.

    Example:
        >>> escape('a "b" & c'), escape(None)
        ('a &quot;b&quot; &amp; c', '')
    """
    return html.escape("" if x is None else str(x), quote=True)


def finite(x: Any) -> TypeGuard[float | int | str]:
    """Whether ``x`` is a finite number (booleans are not numbers here).

    Example:
        >>> finite(1), finite("0.5"), finite(float("nan")), finite(True), finite(None)
        (True, True, False, False, False)
    """
    if isinstance(x, bool):
        return False
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or ``"n/a"``.

    Example:
        >>> num(2 / 3), num(2 / 3, 1), num("x")
        ('0.667', '0.7', 'n/a')
    """
    return f"{float(x):.{digits}f}" if finite(x) else "n/a"


def data_value(x: Any) -> str:
    """The ``data-value`` attribute the sorting script reads (empty for missing values: sorted last).

    Example:
        >>> data_value(0.5), data_value(None)
        (' data-value="0.5"', ' data-value=""')
    """
    return f' data-value="{round(float(x), 10)!r}"' if finite(x) else ' data-value=""'


def pvalue(p: Any) -> str:
    """A p-value: three decimals, scientific below 0.001, ``"n/a"`` when missing.

    Example:
        >>> pvalue(0.0312), pvalue(2e-5), pvalue(None)
        ('0.031', '2.0e-05', 'n/a')
    """
    if not finite(p):
        return "n/a"
    p = float(p)
    return f"{p:.1e}" if 0 < p < 1e-3 else f"{p:.3f}"


def scalar(x: Any) -> str:
    """A readable string for a scalar value (floats to 4 significant digits).

    Example:
        >>> scalar(None), scalar(True), scalar(3.14159), scalar(float("inf")), scalar(7)
        ('—', 'yes', '3.142', 'n/a', '7')
    """
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.4g}"
    return str(x)


def png_uri(data: bytes) -> str:
    """A ``data:`` URI of PNG bytes.

    Example:
        >>> png_uri(b"png")
        'data:image/png;base64,cG5n'
    """
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
