"""What every sandbox gateway shares: shop lookup by token, the clock, the
modified-time search with paging, and a cache so paging one window does not
search the world once per page."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from threading import Lock
from typing import Any

from orderhub.sandbox.world import Order, World


@dataclass(frozen=True)
class AppCredentials:
    """A platform app (key + secret) and one access token per shop. Derived
    from the seed, so the sandbox and ``orderhub demo`` agree without any
    secret living in code or config."""

    app_key: str
    app_secret: str
    tokens: dict[str, str]  # access token -> shop id

    def token_for(self, shop_id: str) -> str:
        return next(t for t, s in self.tokens.items() if s == shop_id)


def sandbox_credentials(seed: int, platform: str, shop_ids: list[str]) -> AppCredentials:
    def derive(*parts: object) -> str:
        return hashlib.sha256("|".join(["orderhub-sandbox", str(seed), *map(str, parts)])
                              .encode()).hexdigest()

    return AppCredentials(
        app_key=str(int(derive(platform, "app_key"), 16))[:8],
        app_secret=derive(platform, "app_secret")[:32],
        tokens={derive(platform, shop, "token")[:40]: shop for shop in shop_ids},
    )


def yuan(amount: Decimal) -> str:
    """Yuan as a string with two decimals: ``"200.07"``."""
    return f"{amount:.2f}"


def yuan_number(amount: Decimal) -> Decimal:
    """Yuan as a JSON number the way PDD writes it: ``4.5``, ``59``."""
    text = f"{amount:.2f}".rstrip("0").rstrip(".")
    return Decimal(text)


def fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split ``total`` over lines by weight, to the cent, summing exactly."""
    base = sum(weights)
    if not weights or base == 0:
        return [Decimal("0.00")] * len(weights)
    shares = [(total * w / base).quantize(Decimal("0.01")) for w in weights[:-1]]
    return [*shares, total - sum(shares, Decimal("0.00"))]


class Gateway:
    """One platform's gateway. Subclasses: ``prefix``, ``handle`` and ``render``."""

    platform: str
    prefix: str
    first_page: int = 1

    def __init__(self, world: World, credentials: AppCredentials, clock, index_delay: int):
        self.world = world
        self.credentials = credentials
        self.clock = clock  # () -> sandbox now, Unix seconds
        self.index_delay = index_delay
        self._cache: dict[tuple, list[tuple[Order, int]]] = {}
        self._lock = Lock()

    def shop_for(self, token: str | None) -> str | None:
        return self.credentials.tokens.get(token or "")

    def search(self, shop_id: str, start: int, end: int) -> list[tuple[Order, int]]:
        visible_before = self.clock() - self.index_delay
        key = (shop_id, start, end, visible_before)
        with self._lock:
            if key not in self._cache:
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[key] = self.world.search(self.platform, shop_id, start, end,
                                                     visible_before)
            return self._cache[key]

    def page(self, shop_id: str, start: int, end: int, page: int,
             size: int) -> tuple[list[dict[str, Any]], int]:
        hits = self.search(shop_id, start, end)
        offset = (page - self.first_page) * size
        return [self.render(o, v) for o, v in hits[offset:offset + size]], len(hits)

    def handle(self, path: str, query: dict[str, str], form: dict[str, str],
               body: bytes) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def render(self, order: Order, version: int) -> dict[str, Any]:
        raise NotImplementedError
