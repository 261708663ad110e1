"""The one base class of every error lt_plugins raises on purpose.

Each of the package's own errors also keeps its builtin base (``TicketError`` is a
``ValueError``, ``NonFiniteLossError`` a ``FloatingPointError``), so code that catches the
builtin keeps working, and ``except lt.LTPluginsError`` catches them all.
"""

from __future__ import annotations


class LTPluginsError(Exception):
    """Base of the package's own errors: ``except lt.LTPluginsError`` catches every one of them.

    Example:
        >>> import lt_plugins as lt
        >>> issubclass(lt.NonFiniteLossError, lt.LTPluginsError), issubclass(lt.NonFiniteLossError, FloatingPointError)
        (True, True)
    """
