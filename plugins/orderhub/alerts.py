"""Alerts: what a data engineer must be told, sent to a chat webhook
(DingTalk, WeCom, Feishu or Slack message shapes) and/or by e-mail.

Rules (each alert names platform, shop, window and a number):

* ``sync_latency``: p95 sync latency of a shop-hour above ``ORDERHUB_ALERT_LATENCY_SECONDS``
  (the figure of marts.rpt_ingestion_health, from intermediate.int_order_version_latency);
* ``incomplete_window``: an extraction window still failed, partial or short an hour
  (``ORDERHUB_ALERT_INCOMPLETE_AFTER_SECONDS``) after it closed (ops.extraction_windows);
* ``unknown_status``: orders modified in the interval whose raw status the mapping seed
  lacks (marts.fct_orders);
* ``failed_expectation``: a critical GX expectation failed in this run (ops.validation_results);
* ``reconciliation_review``: reconciliation differences over their rule's tolerance
  (action manual_review in seeds/recon_rules.csv, not resolved) among the orders
  reconciled in the interval, per shop and category (marts.rpt_recon_review_queue);
* ``oversold``: a merchant SKU whose channels' orders hold and reserve more
  units than the warehouse counted: units sold twice (marts.stock_positions,
  read when the rule runs; issue 18), once per SKU and run interval;
* ``oversell_risk``: a merchant SKU whose channels offer more than may be sold,
  or that sells out within the hour at the last hour's rate
  (marts.rpt_oversell_risk; an oversold one has its own alert), once per SKU
  and run interval;
* ``backfill_summary``: a sync of a span of history (a manual repair run with
  params start/end) is summarized once - what was synced, what is still open -
  instead of an alert per backfilled hour.

Which rules apply depends on the run (``kind``): a live run (the hourly
DAGs) gets every rule, with sync latency over live versions only (a version a
history sync read is "late" by days, and says nothing of intake); a backfill
run gets its summary, unknown statuses and failed expectations; a settlement
run gets its windows, failed expectations and the review queue.

Channels are Airflow connections, because webhook URLs carry tokens:

* ``orderhub_alerts_webhook``: host = the webhook URL (or extra ``url``), extra
  ``{"shape": "dingtalk" | "wecom" | "feishu" | "slack"}``; for DingTalk's signed
  robots the password is the signing secret.
* ``orderhub_alerts_email``: an SMTP server (host, port, login, password), extra
  ``{"from": "...", "to": ["..."], "starttls": false}``.

Every alert sent is recorded in ops.alerts; the same alert (kind, platform,
shop, window, subject) is sent once, so re-running an interval does not spam.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import smtplib
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import psycopg
import requests

from orderhub.config import PLATFORM_TZ
from orderhub.landing import OPEN_WINDOW, relation_exists
from orderhub.mapping import UNMAPPED_STATUS
from orderhub.repair import OPEN_WINDOWS_ALL_SQL

log = logging.getLogger(__name__)

ALERTS_SQL = """
create schema if not exists ops;
create table if not exists ops.alerts (
    alert_id      bigint generated always as identity primary key,
    kind          text        not null,
    platform      text        not null default '',
    shop_id       text        not null default '',
    window_start  timestamptz,
    window_end    timestamptz,
    subject       text        not null,
    value         text        not null,
    message       text        not null,
    run_id        text,
    channels      text        not null default '',
    sent_at       timestamptz not null default now()
);
create unique index if not exists alerts_once on ops.alerts
    (kind, platform, shop_id, coalesce(window_start, '-infinity'), coalesce(window_end, '-infinity'), subject);
"""


@dataclass
class Alert:
    kind: str
    platform: str
    shop_id: str
    window_start: datetime | None
    window_end: datetime | None
    subject: str  # what, in a few words (also part of the dedupe key)
    value: str  # the number

    @property
    def message(self) -> str:
        where = " / ".join(x for x in (self.platform, self.shop_id) if x) or "all platforms"
        window = ""
        if self.window_start and self.window_end:
            a, b = (t.astimezone(PLATFORM_TZ) for t in (self.window_start, self.window_end))
            window = f" [{a:%Y-%m-%d %H:%M}, {b:%Y-%m-%d %H:%M}) (UTC+8)"
        return f"OrderHub {self.kind}: {where}{window}: {self.subject}: {self.value}"


def _hour_ceiling(t: datetime) -> datetime:
    """The first whole hour at or after ``t``: a shop-hour starts in [start,
    end) exactly when its versions were modified in [ceiling(start), ceiling(end))."""
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(hours=1)


def _seconds(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


RUN_KINDS = ("live", "backfill", "settlements")


def evaluate(conn: psycopg.Connection, start: datetime, end: datetime, run_id: str | None,
             kind: str = "live") -> list[Alert]:
    """The alert rules of a run of ``kind`` for the interval [start, end) and
    the run ``run_id``."""
    if kind not in RUN_KINDS:
        raise ValueError(f"run kind {kind!r}: one of {RUN_KINDS}")
    alerts: list[Alert] = []
    latency = _seconds("ORDERHUB_ALERT_LATENCY_SECONDS", 2 * 3600)
    if kind == "backfill":
        alerts += backfill_summary(conn, start, end)
    if kind == "live" and relation_exists(conn, "intermediate.int_order_version_latency"):
        # The shop-hours of rpt_ingestion_health that start in [start, end),
        # computed from the versions modified in them: a range on the modified
        # time reaches the raw tables' index, so the rule reads the interval,
        # not the history (the mart's p95, rounded as there).
        for platform, shop, hour, p95 in conn.execute(
                "select * from (select platform, shop_id, hour_start,"
                " round(percentile_cont(0.95) within group (order by latency_seconds)::numeric, 1) as p95"
                " from intermediate.int_order_version_latency"
                " where source_modified_at >= %s and source_modified_at < %s"
                " and sync_mode = 'live'"
                " group by 1, 2, 3) as hours where p95 > %s order by 1, 2, 3",
                (_hour_ceiling(start), _hour_ceiling(end), latency)):
            alerts.append(Alert("sync_latency", platform, shop, hour, hour + timedelta(hours=1),
                                f"p95 sync latency above {latency:.0f} s", f"{p95:.0f} s"))
    after = timedelta(seconds=_seconds("ORDERHUB_ALERT_INCOMPLETE_AFTER_SECONDS", 3600))
    if kind != "backfill" and relation_exists(conn, "ops.extraction_windows"):
        for (platform, shop, _entity, w_start, w_end, outcome, reported, landed, *_
             ) in conn.execute(OPEN_WINDOWS_ALL_SQL):
            if w_end > end - after:
                continue
            value = (f"{landed} of {reported} orders landed" if reported is not None
                     else f"outcome {outcome}")
            alerts.append(Alert("incomplete_window", platform, shop, w_start, w_end,
                                f"window still {outcome if outcome != 'ok' else 'short'}"
                                f" {after.total_seconds() / 60:.0f} min after it closed", value))
    if relation_exists(conn, "marts.fct_orders"):
        # the orders the platforms modified in the interval (an index), not all history
        unknown = ("select platform, shop_id, raw_order_status, raw_refund_status, count(*)"  # noqa: S608 - a constant
                   f" from marts.fct_orders where {UNMAPPED_STATUS}"
                   " and updated_at >= %s and updated_at < %s group by 1, 2, 3, 4 order by 1, 2, 3, 4")
        for platform, shop, status, refund, orders in conn.execute(unknown, (start, end)):
            alerts.append(Alert("unknown_status", platform, shop, None, None,
                                f"status '{status}' / refund '{refund}' not in the status mapping",
                                f"{orders} orders"))
    if run_id and relation_exists(conn, "ops.validation_results"):
        for checkpoint, suite, description, expectation, observed in conn.execute(
                "select checkpoint, suite, description, expectation, observed"
                " from ops.validation_results where run_id = %s and not success"
                " and severity = 'critical' order by 1, 2, 3", (run_id,)):
            platform = suite.removeprefix("raw_completeness_") if suite.startswith(
                "raw_completeness_") else ""
            alerts.append(Alert("failed_expectation", platform, "", start, end,
                                f"{checkpoint}: {description or expectation}",
                                f"{observed} unexpected"))
    if kind == "live" and relation_exists(conn, "marts.stock_positions"):
        for sku, oversold, on_hand, held, reserved in conn.execute(
                "select merchant_sku, oversold, on_hand, held, reserved"
                " from marts.stock_positions where oversold > 0 order by 1"):
            alerts.append(Alert("oversold", "", "", start, end,
                                f"{sku}: {held} held and {reserved} reserved against"
                                f" {on_hand} on hand", f"{oversold} units sold twice"))
    if kind == "live" and relation_exists(conn, "marts.rpt_oversell_risk"):
        for sku, offered, available, beyond, minutes in conn.execute(
                "select merchant_sku, offered, available_to_sell, offered_beyond_available,"
                " minutes_to_sell_out from marts.rpt_oversell_risk"
                " where (offered_beyond_available or sells_out_within_hour) and not oversold_now"
                " order by 1"):
            alerts.append(Alert(
                "oversell_risk", "", "", start, end,
                f"{sku}: " + (f"the channels offer {offered} of {available} available"
                              if beyond else "sells out within the hour"),
                f"{offered - available} units offered beyond" if beyond
                else f"{minutes} min to sell out"))
    if kind != "backfill" and relation_exists(conn, "marts.rpt_recon_review_queue"):
        for platform, shop, category, orders, amount in conn.execute(
                "select platform, shop_id, difference_category, count(*), sum(difference_amount)"
                " from marts.rpt_recon_review_queue"
                " where reconciliation_date >= (%s at time zone 'Asia/Shanghai')::date"
                " and reconciliation_date < (%s at time zone 'Asia/Shanghai')::date"
                " group by 1, 2, 3 order by 1, 2, 3", (start, end)):
            alerts.append(Alert("reconciliation_review", platform, shop, start, end,
                                f"{category} differences need review (rpt_recon_review_queue)",
                                f"{orders} orders, {amount:.2f} yuan"))
    return alerts


def backfill_summary(conn: psycopg.Connection, start: datetime, end: datetime) -> list[Alert]:
    """One alert for a sync of the span [start, end): windows read, orders
    landed, windows still open (with the first reason)."""
    if not relation_exists(conn, "ops.extraction_windows"):
        return []
    summary = ("select count(*), coalesce(sum(orders_landed), 0),"  # noqa: S608 - a constant
               f" count(*) filter (where {OPEN_WINDOW}), min(last_error) filter (where {OPEN_WINDOW})"
               " from ops.extraction_windows where entity = 'orders' and sync_mode = 'backfill'"
               " and window_start >= %s and window_end <= %s")
    windows, orders, still_open, reason = conn.execute(summary, (start, end)).fetchone()
    if not windows:
        return []
    value = f"{windows} windows, {orders} orders landed, {still_open} still open"
    if still_open:
        value += f" (first: {reason[:120]})" if reason else ""
    return [Alert("backfill_summary", "", "", start, end,
                  "history sync done" if not still_open else "history sync incomplete", value)]


# -- message shapes --------------------------------------------------------------

def webhook_body(shape: str, alerts: list[Alert]) -> dict:
    title = f"OrderHub: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    lines = [a.message for a in alerts]
    if shape == "dingtalk":
        return {"msgtype": "markdown", "markdown": {
            "title": title, "text": f"### {title}\n" + "\n".join(f"- {line}" for line in lines)}}
    if shape == "wecom":
        return {"msgtype": "markdown", "markdown": {
            "content": f"**{title}**\n" + "\n".join(f"> {line}" for line in lines)}}
    if shape == "feishu":
        return {"msg_type": "text", "content": {"text": title + "\n" + "\n".join(lines)}}
    if shape == "slack":
        return {"text": title, "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": "\n".join(f"• {line}" for line in lines)}}]}
    raise ValueError(f"unknown webhook shape {shape!r}: dingtalk, wecom, feishu or slack")


def dingtalk_signed(url: str, secret: str, now_ms: int | None = None) -> str:
    """DingTalk robots with "加签": timestamp and HMAC-SHA256 sign as query parameters."""
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


# -- channels ----------------------------------------------------------------------

@dataclass
class Webhook:
    url: str
    shape: str
    secret: str = ""

    def send(self, alerts: list[Alert]) -> None:
        url = dingtalk_signed(self.url, self.secret) if self.shape == "dingtalk" and self.secret else self.url
        host = urllib.parse.urlsplit(self.url).netloc  # never the URL: it carries the token
        try:
            response = requests.post(url, json=webhook_body(self.shape, alerts), timeout=10)
        except requests.RequestException as exc:
            # requests puts the URL, token included, in its messages: name the host only.
            raise RuntimeError(f"{self.shape} webhook at {host}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise RuntimeError(f"{self.shape} webhook at {host} answered {response.status_code}")


@dataclass
class Email:
    host: str
    port: int
    sender: str
    recipients: list[str]
    login: str = ""
    password: str = ""
    starttls: bool = False

    def send(self, alerts: list[Alert]) -> None:
        message = EmailMessage()
        message["Subject"] = f"OrderHub: {len(alerts)} alert(s)"
        message["From"], message["To"] = self.sender, ", ".join(self.recipients)
        message.set_content("\n".join(a.message for a in alerts))
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.login:
                smtp.login(self.login, self.password)
            smtp.send_message(message)


def channels_from_airflow() -> list[Webhook | Email]:
    """The configured channels (none configured: alerts are only recorded and logged)."""
    from airflow.sdk import BaseHook

    found: list[Webhook | Email] = []
    for conn_id, build in (("orderhub_alerts_webhook", _webhook), ("orderhub_alerts_email", _email)):
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception:  # noqa: BLE001 - not configured is a normal state
            continue
        found.append(build(conn))
    return found


def _webhook(conn) -> Webhook:
    extra = conn.extra_dejson
    url = extra.get("url") or conn.host
    if url and not url.startswith("http"):
        url = f"{conn.schema or 'https'}://{url}"
    return Webhook(url, extra.get("shape", "dingtalk"), conn.password or "")


def _email(conn) -> Email:
    extra = conn.extra_dejson
    recipients = extra.get("to") or []
    return Email(conn.host, int(conn.port or 25), extra.get("from", "orderhub@localhost"),
                 [recipients] if isinstance(recipients, str) else list(recipients),
                 conn.login or "", conn.password or "", bool(extra.get("starttls", False)))


def notify(url: str, start: datetime, end: datetime, run_id: str | None,
           channels: list[Webhook | Email], kind: str = "live") -> list[Alert]:
    """Evaluate the rules, send what was not sent before, record it; returns the new alerts."""
    with psycopg.connect(url) as conn:
        conn.execute(ALERTS_SQL)
        return send_once(conn, evaluate(conn, start, end, run_id, kind), run_id, channels)


def send_once(conn: psycopg.Connection, alerts: list[Alert], run_id: str | None,
              channels: list[Webhook | Email]) -> list[Alert]:
    """Record and send the alerts not sent before (ops.alerts); returns those."""
    new = []
    for alert in alerts:
        inserted = conn.execute(
            "insert into ops.alerts (kind, platform, shop_id, window_start, window_end,"
            " subject, value, message, run_id, channels) values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " on conflict do nothing returning alert_id",
            (alert.kind, alert.platform, alert.shop_id, alert.window_start, alert.window_end,
             alert.subject, alert.value, alert.message, run_id,
             ",".join(type(c).__name__.lower() for c in channels))).fetchone()
        if inserted:
            new.append(alert)
    for alert in new:
        log.warning("%s", alert.message)
    errors = []
    for channel in channels if new else []:
        try:
            channel.send(new)
        except Exception as exc:  # noqa: BLE001 - one channel down must not hide the others
            errors.append(f"{type(channel).__name__}: {exc}")
    if errors:
        conn.rollback()  # not recorded: the next run tries again
        raise RuntimeError("alert delivery failed: " + "; ".join(errors))
    conn.commit()
    return new
