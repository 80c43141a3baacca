"""The platform sandbox: a deterministic world and gateways that speak each
platform's dialect. See ``docs/sandbox.md``.

Its registry: every module of this package defining a ``Gateway`` subclass
with a ``platform`` name is that platform's gateway (a new platform's gateway
is one new module here; nothing else in the sandbox lists platforms).
"""

from __future__ import annotations

from functools import cache

# Modules of this package that are the sandbox's machinery, not a platform.
_MACHINERY = {"channels", "delivery", "faults", "gateway", "push", "server", "settlement", "stock", "world"}


@cache
def gateways() -> dict:
    """Platform name -> its gateway class, in the platform registry's order."""
    from orderhub.platforms import discover, names
    from orderhub_tools.sandbox.gateway import Gateway

    found = discover(__name__, __path__, Gateway, _MACHINERY)
    order = {name: i for i, name in enumerate(names())}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def gateway_class(platform: str):
    try:
        return gateways()[platform]
    except KeyError:
        raise ValueError(f"the sandbox has no gateway for platform {platform!r}"
                         f" (it has: {', '.join(gateways())})") from None


def connection_path(platform: str) -> str:
    """What follows the sandbox's URL in a shop's gateway_url."""
    cls = gateway_class(platform)
    return cls.connection_path or cls.prefix


def shop_credentials(url: str, seed: int, platform: str, shop_id: str, shop_ids: list[str]):
    """What a shop's connection holds when it points at the sandbox at ``url``:
    the gateway URL and the seed's app key, secret and the shop's token
    (``shop_ids``: every shop of the platform in the sandbox's world)."""
    from orderhub.platforms import Credentials
    from orderhub_tools.sandbox.gateway import sandbox_credentials

    app = sandbox_credentials(seed, platform, shop_ids)
    return Credentials(url + connection_path(platform), app.app_key, app.app_secret,
                       app.token_for(shop_id))
