"""The platform registry: the one place that says which platforms exist.

A platform is either

* a module of this package defining a :class:`PlatformClient` subclass with a
  ``platform`` name (signing, envelopes, errors: code, because every Chinese
  platform signs its calls its own way), or
* a config-only source: a file ``config/sources/<name>.yml`` describing a plain
  JSON REST API (:mod:`orderhub.platforms.rest`), for a brand's own shop.

Everything that lists platforms derives from here: the shops file's check, the
raw tables' partitions, the CLI's choices, the report's colours, the GX suites,
the sandbox's gateways (``orderhub_tools.sandbox``) and the tests'
parametrization. dbt derives its list from the mapping seed (a platform is in
the models once it has mapping rows); ``orderhub mapping check`` and a test
hold the two equal.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from functools import cache
from pathlib import Path

from orderhub.platforms.base import Credentials, Page, PlatformClient, PlatformError

# Modules of this package that define no platform of their own.
_MACHINERY = {"base", "rest"}


def sources_dir() -> Path:
    """Where config-only sources live (``ORDERHUB_SOURCES_DIR``, default config/sources)."""
    from orderhub.config import REPO_ROOT

    return Path(os.environ.get("ORDERHUB_SOURCES_DIR", REPO_ROOT / "config" / "sources"))


def discover(package: str, path: list[str], base: type, machinery: set[str]) -> dict[str, type]:
    """Platform name -> the class of it a package's modules define: every
    subclass of ``base`` with its own ``platform`` attribute, in every module
    of the package but its ``machinery`` (the platform registry here, the
    sandbox's gateways in orderhub_tools.sandbox)."""
    found: dict[str, type] = {}
    for module in pkgutil.iter_modules(path):
        if module.name in machinery or module.name.startswith("_"):
            continue
        namespace = importlib.import_module(f"{package}.{module.name}")
        for value in vars(namespace).values():
            if (isinstance(value, type) and issubclass(value, base)
                    and value.__module__ == namespace.__name__ and "platform" in vars(value)):
                found[value.platform] = value
    return found


@cache
def clients() -> dict[str, type[PlatformClient]]:
    """Every platform's client class, in listing order (``position``, then name)."""
    found = discover(__name__, __path__, PlatformClient, _MACHINERY)
    from orderhub.platforms.rest import source_clients

    for name, cls in source_clients(sources_dir()).items():
        if name in found:
            raise ValueError(f"config/sources/{name}.yml: platform {name!r} is already a coded"
                             " platform")
        found[name] = cls
    return dict(sorted(found.items(), key=lambda item: (item[1].position, item[0])))


def names() -> tuple[str, ...]:
    """Every registered platform, in listing order."""
    return tuple(clients())


def client_class(platform: str) -> type[PlatformClient]:
    try:
        return clients()[platform]
    except KeyError:
        raise ValueError(f"unknown platform {platform!r}; known: {', '.join(names())}") from None


def client_for(platform: str, credentials: Credentials, **kwargs) -> PlatformClient:
    return client_class(platform)(credentials, **kwargs)


__all__ = ["Credentials", "Page", "PlatformClient", "PlatformError", "client_class",
           "client_for", "clients", "discover", "names", "sources_dir"]
