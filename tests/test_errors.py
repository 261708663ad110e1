"""One base class for the package's errors, each keeping its builtin base."""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil

import lt_plugins as lt


def _package_errors() -> list[type]:
    found = {}
    for info in pkgutil.walk_packages(lt.__path__, "lt_plugins."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__.startswith("lt_plugins.")
                    and not name.startswith("_")):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_every_error_of_the_package_subclasses_the_base_and_a_builtin():
    errors = [e for e in _package_errors() if e is not lt.LTPluginsError]
    assert {e.__name__ for e in errors} >= {"TicketError", "CheckpointError", "NonFiniteLossError"}
    builtin_errors = tuple(v for v in vars(builtins).values()
                           if inspect.isclass(v) and issubclass(v, Exception) and v is not Exception)
    for error in errors:
        assert issubclass(error, lt.LTPluginsError), error
        assert issubclass(error, builtin_errors), f"{error} lost its builtin base"


def test_the_base_catches_a_ticket_error_as_before_a_value_error(tmp_path):
    for base in (lt.LTPluginsError, ValueError):
        try:
            lt.Ticket.from_pretrained(tmp_path)
        except base as err:
            assert type(err).__name__ == "TicketError"
        else:
            raise AssertionError("an empty folder is not a ticket")
