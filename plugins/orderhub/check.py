"""`orderhub check`: does each shop's connection work? (issue 20)

One cheap signed call per shop, the way Airbyte's and Fivetran's "test
connection" work: the shop's Airflow connection looked up (metadata DB,
secrets backend or ``AIRFLOW_CONN_*``, as the DAGs look it up), then one order
search over the last minute, one small page. The answer is said plainly:
which connection is missing, whether the gateway could not be reached, refused
the signature or the token, or answered something OrderHub cannot read.
Nothing is landed; the call is not recorded in ops.api_calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orderhub.config import Shop

# What each failure means for the person fixing it, by PlatformError kind.
ADVICE = {
    "signature": "the gateway refused the signature: the app secret (the connection's"
                 " password) is wrong, or belongs to another app key (its login)",
    "auth": "the gateway refused the credentials: the access token (extra access_token)"
            " has expired or was revoked, or the app key is not authorised for this shop",
    "transport": "the gateway could not be reached: check extra gateway_url, the network"
                 " and any proxy",
    "server": "the gateway answered with a server error: the platform is failing now; try"
              " again later (the repair DAG retries windows on its own)",
    "throttled": "the gateway throttled the call: the credentials work, the app is over its"
                 " rate limit for now",
    "clock": "the gateway refused the request's timestamp: this machine's clock is off",
    "malformed": "the gateway answered something that is not its API's answer: is"
                 " gateway_url the platform's API endpoint?",
    "api": "the gateway refused the call",
}


@dataclass
class Check:
    shop: Shop
    ok: bool
    said: str  # what happened, in a sentence

    def line(self) -> str:
        return (f"{self.shop.platform:<7} {self.shop.shop_id:<16} {'ok' if self.ok else 'FAILED':<6}"
                f" {self.said}")


def check_shop(shop: Shop) -> Check:
    """One order search over the last minute with the shop's connection."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from orderhub.platforms import Credentials, PlatformError, client_for

    try:
        credentials = Credentials.from_airflow(shop.conn_id)
    except AirflowNotFoundException:
        return Check(shop, False, f"no Airflow connection {shop.conn_id}: add it (`airflow"
                                  f" connections add {shop.conn_id} ...`, or"
                                  f" AIRFLOW_CONN_{shop.conn_id.upper()}); docs/platforms.md")
    except (KeyError, ValueError, TypeError) as error:
        return Check(shop, False, f"connection {shop.conn_id} is incomplete: {error}")
    try:
        client = client_for(shop.platform, credentials)
        end = datetime.fromtimestamp(client.platform_now(), UTC).replace(microsecond=0)
        page = client.search_orders(end - timedelta(minutes=1), end, client.first_page,
                                    min(10, client.max_page_size))
    except PlatformError as error:
        advice = ADVICE.get(error.kind, ADVICE["api"])
        return Check(shop, False, f"{advice} ({error.code}: {error.message[:120]})")
    return Check(shop, True, "the gateway answered a signed order search"
                             + (f" ({page.total} orders in the last minute)"
                                if page.total is not None else ""))
