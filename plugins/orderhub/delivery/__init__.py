"""Delivery services: who carries a shop's own orders to the buyer (issue 19).

A delivery service is not a sales channel: its orders are deliveries *of*
the shop's orders. A shop that delivers with one says so in the shops file
(``delivery: sf_same_city`` and ``delivery_conn_id:``); after each window of
its orders, the same extraction machinery (windows, retries, breaker,
ledger, landing) asks the service about every order of the window and lands
the answers in ``raw.deliveries`` (entity ``deliveries``, under the shop's
platform and shop id), from which dbt builds ``marts.fct_deliveries``.

A service is a module of this package defining a :class:`DeliveryClient`
subclass with a ``service`` name and its ``platform`` (the same name: the
registry's discovery finds it by that; today SF same-city, ``sf_same_city.py``).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from orderhub.platforms.base import Credentials, HttpRequest, PlatformClient


class DeliveryClient(PlatformClient):
    """One shop's account with a delivery service. It shares the platform
    clients' transport (signing aside): ``call``, ``send``, the clock, the
    API-call record. ``platform`` is the service's name, for errors, the
    breaker and ``ops.api_calls``."""

    service: ClassVar[str]
    max_window = None  # type: ignore[assignment]  # windows are the shop's order windows

    def __init__(self, credentials: Credentials, *, shop_id: str, **kwargs):
        super().__init__(credentials, **kwargs)
        self.shop_id = shop_id  # the shop's id in our own system: the service knows it by it

    # The APIs asked about each delivery, in turn; the landed payload holds
    # their answers side by side, under their names.
    apis: ClassVar[tuple[str, ...]] = ()

    def ask(self, api: str, order_id: str) -> dict[str, Any] | None:
        """One call of one of ``apis`` about the delivery of a shop order:
        its answer, or None when the service carries no such order."""
        raise NotImplementedError

    def delivery(self, order_id: str) -> dict[str, Any] | None:
        """What the service says of the delivery of one shop order (one
        payload: the answers of its ``apis`` side by side), or None when it
        carries no such order. Without retries: the extraction retries each
        call on its own (orderhub.extract.WindowFetch.deliveries)."""
        payload = {}
        for api in self.apis:
            answer = self.ask(api, order_id)
            if answer is None:
                return None
            payload[api] = answer
        return payload

    def identity(self, entity: str, payload: dict[str, Any]) -> tuple[str, datetime]:
        """(the shop order id, the delivery's last status time)."""
        raise NotImplementedError

    # Status callbacks (the service pushes each change of a delivery): the
    # answers it expects, and how one is verified and read.
    callback_ok: ClassVar[dict[str, Any]] = {}
    callback_refusal: ClassVar[dict[str, Any]] = {}

    @classmethod
    def verify_callback_request(cls, query: dict[str, str], body: bytes,
                                apps: list[Credentials]) -> Credentials:
        """The account a callback came from; PushRejected when it verifies
        with none of ``apps``."""
        raise NotImplementedError

    @classmethod
    def read_callback(cls, text: str) -> tuple[str, str, str]:
        """(our shop id, the shop order id, the callback's id) of one status
        callback; KeyError/ValueError/TypeError when it lacks them."""
        raise NotImplementedError

    def order_search_request(self, start, end, page, page_size) -> HttpRequest:
        raise NotImplementedError(f"{self.service}: a delivery service lists no orders")


@cache
def services() -> dict[str, type[DeliveryClient]]:
    """Every delivery service's client class, by service name: the
    platform registry's discovery, over this package."""
    from orderhub.platforms import discover

    found = discover(__name__, __path__, DeliveryClient, set())
    return {cls.service: cls for cls in found.values()}


def service_class(service: str) -> type[DeliveryClient]:
    try:
        return services()[service]
    except KeyError:
        raise ValueError(f"unknown delivery service {service!r}; known:"
                         f" {', '.join(services())}") from None


__all__ = ["DeliveryClient", "service_class", "services"]
