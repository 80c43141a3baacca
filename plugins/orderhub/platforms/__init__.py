"""One client per platform; :func:`client_for` picks it by name."""

from __future__ import annotations

from orderhub.platforms.base import Credentials, Page, PlatformClient, PlatformError
from orderhub.platforms.douyin import DouyinClient
from orderhub.platforms.jd import JdClient
from orderhub.platforms.pdd import PddClient
from orderhub.platforms.tmall import TmallClient

CLIENTS: dict[str, type[PlatformClient]] = {
    cls.platform: cls for cls in (TmallClient, JdClient, PddClient, DouyinClient)
}


def client_for(platform: str, credentials: Credentials, **kwargs) -> PlatformClient:
    try:
        return CLIENTS[platform](credentials, **kwargs)
    except KeyError:
        raise ValueError(f"unknown platform {platform!r}; known: {sorted(CLIENTS)}") from None


__all__ = ["CLIENTS", "Credentials", "Page", "PlatformClient", "PlatformError", "client_for"]
