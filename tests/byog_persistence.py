"""The decorator pattern of the official StyleGAN2-ADA networks, in a module of its own as there
(``torch_utils/persistence.py``): the classes it returns live in *this* module, under a
``<locals>`` qualname, while the decorated classes' names are importable from theirs.
Our own code, written for `byog_models`.
"""

from __future__ import annotations

import copy
from typing import Any


def persistent_class(cls: type) -> type:
    """Return a subclass of ``cls`` that records its constructor arguments, as the official
    StyleGAN2-ADA code's ``persistence.persistent_class`` does.

    The subclass is defined inside this function, so its ``__qualname__`` holds ``<locals>``
    and it cannot be imported by name; its ``__name__`` is the decorated class's. Instances keep
    ``init_args`` and ``init_kwargs`` (copies of what ``__init__`` was called with).

    Example:
        >>> from torch import nn
        >>> Linear = persistent_class(nn.Linear)
        >>> layer = Linear(2, 3, bias=False)
        >>> Linear.__name__, "<locals>" in Linear.__qualname__, layer.init_args, layer.init_kwargs
        ('Linear', True, (2, 3), {'bias': False})
    """

    class Persistent(cls):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._recorded_args = copy.deepcopy(args)
            self._recorded_kwargs = copy.deepcopy(kwargs)

        @property
        def init_args(self) -> tuple:
            return copy.deepcopy(self._recorded_args)

        @property
        def init_kwargs(self) -> dict[str, Any]:
            return copy.deepcopy(self._recorded_kwargs)

    Persistent.__name__ = cls.__name__
    Persistent.__doc__ = cls.__doc__
    return Persistent
