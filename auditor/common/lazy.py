"""A package whose names are imported on first use (PEP 562's module `__getattr__`): importing the
package, or one of its modules, then costs only what is asked for (a command's --help imports no
database or report library)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, homes: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """The package's `__getattr__`: `homes` maps each module of the package to the names it gives."""
    home_of = {name: module for module, names in homes.items() for name in names}
    namespace = vars(sys.modules[package])

    def name_of_package(name: str) -> Any:
        module = home_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # found once: the next look-up is an ordinary attribute
        return value

    return name_of_package
