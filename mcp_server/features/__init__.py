"""The app's own tools, one module each, written with the kit in `kit.py` (docs/extending.md).

Every module here is a feature, except `kit` and modules whose name starts with `_`: it defines
`register(tools, store)`, which `register_features` calls, in module-name order. Adding a feature
is adding a module; there is no list to update.
"""

from __future__ import annotations

import importlib
import pkgutil

from mcp_server.features.kit import Tools
from shared.storage import Store

NOT_FEATURES = frozenset({"kit"})


def feature_modules() -> list[str]:
    """The names of the feature modules, in registration order."""
    return [
        info.name
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
        if info.name not in NOT_FEATURES and not info.name.startswith("_")
    ]


def register_features(tools: Tools, store: Store) -> None:
    for name in feature_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if not callable(register):
            raise TypeError(
                f"mcp_server/features/{name}.py is a feature module without register(tools, store)"
            )
        register(tools, store)
