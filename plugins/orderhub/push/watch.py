"""The push path's alerts, checked by ``orderhub stream`` while it runs (the
hourly DAGs' alerts come too late for a path measured in seconds). Recorded
in ops.alerts and sent through the same channels, each once
(orderhub.alerts.send_once):

* ``sync_delay``: the p95 push intake latency of a platform, shop and minute
  (the platform's modified time -> the detail fetch, both on the platform's
  clock, by the minute of the fetch) above ``ORDERHUB_ALERT_SYNC_DELAY_SECONDS``
  (default 15, the article's threshold). Only complete minutes are judged.
* ``consumer_lag``: more than ``ORDERHUB_ALERT_CONSUMER_LAG_MESSAGES``
  (default 5000) messages waiting for the consumer: once per episode (the
  alert's window starts when the lag began; it ends when the lag is gone).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import psycopg

from orderhub.alerts import Alert

SYNC_DELAY_SQL = """
with recent as (
    select platform, shop_id, date_trunc('minute', platform_fetched_at) as minute,
           extract(epoch from platform_fetched_at - modified_at) as latency
    from raw.orders
    where intake = 'push' and extracted_at > now() - interval '10 minutes'
      and platform_fetched_at is not null
),
complete as (  -- a later minute has landed: this one is over
    select * from recent where minute < (select max(minute) from recent)
)
select platform, shop_id, minute,
       round(percentile_cont(0.95) within group (order by latency)::numeric, 1) as p95,
       count(*) as versions
from complete group by 1, 2, 3
having percentile_cont(0.95) within group (order by latency) > %s
order by 1, 2, 3
"""


def sync_delay_threshold() -> float:
    return float(os.environ.get("ORDERHUB_ALERT_SYNC_DELAY_SECONDS", 15))


def sync_delay_alerts(conn: psycopg.Connection) -> list[Alert]:
    """The complete minutes of the last ten whose push p95 is over the threshold."""
    limit = sync_delay_threshold()
    return [Alert("sync_delay", platform, shop, minute, minute + timedelta(minutes=1),
                  f"p95 push intake latency over the minute ({versions} versions)",
                  f"{p95}s > {limit:g}s")
            for platform, shop, minute, p95, versions in conn.execute(SYNC_DELAY_SQL, (limit,))]


class LagWatch:
    """One consumer_lag alert per episode of too many waiting messages."""

    def __init__(self, threshold: int | None = None):
        self.threshold = threshold if threshold is not None else int(
            os.environ.get("ORDERHUB_ALERT_CONSUMER_LAG_MESSAGES", 5000))
        self.since: datetime | None = None

    def check(self, waiting: int, now: datetime) -> list[Alert]:
        if waiting <= self.threshold:
            self.since = None
            return []
        if self.since is None:
            self.since = now.replace(second=0, microsecond=0)
        return [Alert("consumer_lag", "", "", self.since, None,
                      "push messages waiting for orderhub stream",
                      f"{waiting} > {self.threshold}")]
