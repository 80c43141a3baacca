"""Quality gates, health figures and alerts, through the real DAGs.

Breaks the data three ways in one sandbox - a Tmall status the seed does not
map, a field JD stops sending, a PDD shop whose windows stay short - and
checks that the right checkpoint fails naming it and that the right alert
reaches a local webhook receiver (DingTalk's message shape) and a local SMTP
server. Then the health mart and the SLA view show the run's figures."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import re
import socketserver
import subprocess
import sys
import threading
import urllib.parse
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from orderhub.alerts import Alert, dingtalk_signed, webhook_body
from orderhub.config import parse_time
from orderhub_tools.runner import SandboxTarget, airflow_home, run
from orderhub_tools.sandbox.server import SandboxSpec, serve
from orderhub_tools.sandbox.tmall import UNMAPPED
from tests.browser import drawn_dom, fetched_resources
from tests.truth import reset

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

START, END = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T02:00")


class Receiver(BaseHTTPRequestHandler):
    bodies: list[dict] = []
    paths: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')

    def log_message(self, *args):
        pass


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to receive a message (HELO/EHLO, MAIL, RCPT, DATA, QUIT)."""
    messages: list[str] = []

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.reply("220 test ESMTP")
        while line := self.rfile.readline().decode(errors="replace").strip():
            verb = line.split(" ", 1)[0].upper()
            if verb == "DATA":
                self.reply("354 end with .")
                data = []
                while (chunk := self.rfile.readline().decode(errors="replace")).rstrip("\r\n") != ".":
                    data.append(chunk)
                type(self).messages.append("".join(data))
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            elif verb == "EHLO":
                self.reply("250 test")
            else:
                self.reply("250 ok")


@pytest.fixture(scope="module")
def receivers():
    http = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPHandler)
    for server in (http, smtp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield http.server_address[1], smtp.server_address[1]
    http.shutdown()
    smtp.shutdown()


@pytest.fixture(scope="module")
def broken_run(warehouse_url, shops, receivers):
    http_port, smtp_port = receivers
    reset(warehouse_url)
    spec = SandboxSpec(seed=9, shops=[(s.platform, s.shop_id) for s in shops], scale=0.03,
                       unmapped_status=True, dropped_fields={"jd": ["freightPrice"]},
                       short_shops=["pdd-tea"])
    server = serve(spec)
    mp = pytest.MonkeyPatch()
    # The channels are Airflow connections, as in production.
    mp.setenv("AIRFLOW_CONN_ORDERHUB_ALERTS_WEBHOOK", json.dumps({
        "conn_type": "http", "password": "SEC-test-secret",
        "extra": {"url": f"http://127.0.0.1:{http_port}/robot/send?access_token=t0ken",
                  "shape": "dingtalk"}}))
    mp.setenv("AIRFLOW_CONN_ORDERHUB_ALERTS_EMAIL", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
        "extra": {"from": "orderhub@example.com", "to": ["oncall@example.com"]}}))
    try:
        target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", spec.seed)
        # dbt and the checks of the first hour are left to the second run
        # (which builds the marts for both); the alert task runs in both.
        report = run(START, END, sandbox=target, repair=False, defer_marts=True)
        assert report.runs and not report.runs[-1][2], "the last DAG run must fail"
        assert not report.complete
    finally:
        server.shutdown()
        mp.undo()
    return warehouse_url


def failed(url: str, checkpoint: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select suite, description, observed, unexpected::text from ops.validation_results"
            " where checkpoint = %s and not success and severity = 'critical'",
            (checkpoint,)).fetchall()


def test_the_first_run_leaves_dbt_and_the_checks_to_the_last(broken_run):
    """``defer_marts``: the earlier run's dbt and GX tasks are marked successful,
    not run (``airflow dags test --mark-success-pattern``): one run validated."""
    with psycopg.connect(broken_run) as conn:
        validated = conn.execute(
            "select count(distinct run_id) from ops.validation_results").fetchone()[0]
    assert validated == 1


def test_a_dropped_field_fails_raw_completeness_naming_platform_and_field(broken_run):
    rows = failed(broken_run, "raw_completeness")
    assert {(suite, desc) for suite, desc, _, _ in rows} == {
        ("raw_completeness_jd", "jd order.shipping_fee ($.freightPrice) is in every payload")}


def test_an_unmapped_status_fails_the_run_and_is_named(broken_run):
    """Nothing silently dropped: the status the seed lacks fails the DAG run
    (dbt's gate, after the build), named with its platform; raw keeps those
    orders and fct_orders shows them without a code (never a guessed one)
    beside the good orders; `orderhub mapping check` gives the row to paste."""
    log = (airflow_home() / "last_orders_incremental.log").read_text()
    assert f"Unmapped platform statuses: tmall order status '{UNMAPPED}'" in log
    assert "Add rows to seeds/platform_mapping.csv (kind status)" in log
    with psycopg.connect(broken_run) as conn:
        landed = conn.execute("select count(distinct order_id) from raw.orders__tmall"
                              " where payload->>'status' = %s", (UNMAPPED,)).fetchone()[0]
        uncoded = conn.execute("select count(*) from marts.fct_orders where raw_order_status = %s"
                               " and order_status_code is null", (UNMAPPED,)).fetchone()[0]
        coded = conn.execute("select count(*) from marts.fct_orders"
                             " where order_status_code is not null").fetchone()[0]
        failed_windows = conn.execute("select count(*) from ops.extraction_windows"
                                      " where outcome = 'failed'").fetchone()[0]
    assert landed > 0 and uncoded == landed and coded > 0
    assert failed_windows == 0  # every window was read: the mapping failed the run
    report = subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "mapping", "check"],
                            capture_output=True, text=True)
    assert report.returncode == 1
    assert f"tmall,status,,,,,,,,{UNMAPPED},NO_REFUND," in report.stdout


def test_a_short_window_fails_ledger_completeness_naming_the_shop(broken_run):
    rows = failed(broken_run, "ledger_completeness")
    descriptions = {desc for _, desc, _, _ in rows}
    assert "every window landed as many orders as the platform reported" in descriptions
    assert all("pdd-tea" in examples for _, _, _, examples in rows)


def test_an_unmapped_status_fails_mapping_consistency(broken_run):
    rows = failed(broken_run, "mapping_consistency")
    status = [r for r in rows if "platform_mapping.csv (kind status)" in (r[1] or "")]
    assert status and UNMAPPED in status[0][3]
    # JD's missing shipping fee is an unpopulated required standard field too.
    assert ("mapping_consistency", "expect_column_values_to_not_be_null column=shipping_fee") in {
        (suite, desc) for suite, desc, _, _ in rows}


def test_the_right_alerts_reach_the_webhook_and_the_mailbox(broken_run):
    texts = "\n".join(body["markdown"]["text"] for body in Receiver.bodies)
    assert all(body["msgtype"] == "markdown" for body in Receiver.bodies)
    # Signed as DingTalk's 加签 robots expect; the token stays in the URL only.
    assert all("timestamp=" in p and "sign=" in p for p in Receiver.paths)
    assert f"unknown_status: tmall / tmall-flagship: status '{UNMAPPED}'" in texts
    assert "failed_expectation: jd [2026-11-11 01:00, 2026-11-11 02:00) (UTC+8):" \
        " raw_completeness: jd order.shipping_fee ($.freightPrice) is in every payload" in texts
    # The short windows of 00:00-01:00 are still short an hour after they closed.
    assert "incomplete_window: pdd / pdd-tea [2026-11-11 00:00, 2026-11-11 00:30) (UTC+8)" in texts
    assert "orders landed" in texts
    mails = [email.message_from_string(m, policy=email.policy.default) for m in SMTPHandler.messages]
    assert mails and all(m["To"] == "oncall@example.com" for m in mails)
    assert "incomplete_window: pdd / pdd-tea" in "\n".join(m.get_content() for m in mails)


def test_alerts_are_sent_once(broken_run):
    with psycopg.connect(broken_run) as conn:
        sent = conn.execute("select count(*), count(distinct message) from ops.alerts").fetchone()
    assert sent[0] == sent[1] > 0
    messages = [m for b in Receiver.bodies for m in b["markdown"]["text"].splitlines()[1:]]
    assert len(messages) == len(set(messages)) == sent[0]


@pytest.mark.parametrize("start", [START, START + timedelta(minutes=30)])
def test_the_sync_latency_rule_flags_the_health_marts_shop_hours(broken_run, monkeypatch, start):
    """The rule reads only the versions modified in the interval (an index
    range on raw), yet flags exactly the shop-hours of rpt_ingestion_health
    that start in it with a p95 over the threshold, with the mart's figure;
    also when the interval does not start on the hour."""
    from orderhub.alerts import evaluate

    monkeypatch.setenv("ORDERHUB_ALERT_LATENCY_SECONDS", "60")
    with psycopg.connect(broken_run) as conn:
        mart = conn.execute(
            "select platform, shop_id, hour_start, latency_p95_seconds from marts.rpt_ingestion_health"
            " where hour_start >= %s and hour_start < %s and latency_p95_seconds > 60"
            " order by 1, 2, 3", (start, END)).fetchall()
        flagged = [(a.platform, a.shop_id, a.window_start, a.value)
                   for a in evaluate(conn, start, END, None) if a.kind == "sync_latency"]
    assert len(mart) >= 2  # the threshold flags shop-hours in this run
    assert flagged == [(p, s, hour, f"{p95:.0f} s") for p, s, hour, p95 in mart]


def test_health_mart_and_sla_show_the_run(broken_run, shops):
    with psycopg.connect(broken_run) as conn:
        health = conn.execute(
            "select shop_id, min(completeness_rate), max(latency_p95_seconds), sum(open_windows)"
            " from marts.rpt_ingestion_health where hour_start >= %s and hour_start < %s"
            " group by 1", (START, END)).fetchall()
        sla = conn.execute("select platform, sum(calls), max(latency_p95_ms)"
                           " from marts.rpt_platform_sla group by 1").fetchall()
    by_shop = {shop: (rate, p95, open_) for shop, rate, p95, open_ in health}
    assert by_shop["pdd-tea"][0] < 1 and by_shop["pdd-tea"][2] > 0  # the short shop
    assert by_shop["pdd-cups"][0] == 1 and by_shop["pdd-cups"][2] == 0
    # Fetched at the end of the hour plus the 180 s safety lag: p95 between 3 and 63 minutes.
    assert all(180 <= p95 <= 3780 for _, p95, _ in by_shop.values())
    assert {p for p, _, _ in sla} == {shop.platform for shop in shops}
    assert all(calls > 0 and p95 is not None for _, calls, p95 in sla)


def test_message_shapes_of_every_channel():
    alert = Alert("sync_latency", "jd", "10086421", None, None, "p95 above 7200 s", "9000 s")
    assert webhook_body("wecom", [alert])["markdown"]["content"].endswith(alert.message)
    assert webhook_body("feishu", [alert])["content"]["text"].endswith(alert.message)
    assert alert.message in webhook_body("slack", [alert])["blocks"][1]["text"]["text"]
    assert webhook_body("dingtalk", [alert])["msgtype"] == "markdown"
    # DingTalk's documented signature: urlencode(base64(HMAC-SHA256(secret, "timestamp\nsecret"))).
    signed = dingtalk_signed("https://oapi.dingtalk.com/robot/send?access_token=x", "SECabc",
                             now_ms=1700000000000)
    digest = hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    assert signed == ("https://oapi.dingtalk.com/robot/send?access_token=x&timestamp=1700000000000"
                      f"&sign={urllib.parse.quote_plus(base64.b64encode(digest))}")


def test_the_report_draws_its_charts_in_headless_chromium(broken_run, tmp_path):
    """`orderhub report` writes one self-contained page; Chromium, with no
    network, draws its charts (Vega-Lite via the page's own inline Vega-Embed)
    and the page counts the charts whose marks have a size. Without
    --start/--end it reports the last 24 hours of data."""
    out = tmp_path / "report.html"
    # no window given: the last 24 hours of data, up to the end of the newest order's hour
    result = subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "report", "--out", str(out)],
                            capture_output=True, text=True, check=True)
    assert str(out) in result.stdout
    window = f"[{(END - timedelta(hours=24)).isoformat()}, {END.isoformat()})"
    assert window in result.stdout, result.stdout
    assert fetched_resources(out.read_text(encoding="utf-8")) == []  # nothing from anywhere
    dom = drawn_dom(out, tmp_path / "profile")
    # orders per hour, latency, completeness; this world settles nothing
    assert 'data-charts-drawn="3"' in dom and "data-error=" not in dom
    assert 'id="reconciliation">no data in this range' in dom
    marks = {chart: int(n) for chart, n in re.findall(r'id="([a-z-]+)"[^>]*data-marks="(\d+)"', dom)}
    assert marks.keys() == {"orders-per-hour", "latency", "completeness"} and min(marks.values()) > 0
    for title in ("hour (UTC+8)", "orders landed", "sync latency (minutes", "order versions",
                  "extraction window (UTC+8)", "platform / shop"):
        assert f">{title}" in dom, title  # every axis has its title
    legends = re.findall(r'role-legend-title"[^>]*><text[^>]*>([^<]+)<', dom)
    assert legends == ["platform", "percentile", "landed of reported"]
    # a cell per shop and window, labelled, with what hovering shows: pdd-tea's short windows in red
    short = re.findall(r'<path aria-label="([^"]+)"[^>]*fill="#d62728"', dom)
    assert short and all("platform / shop: pdd / pdd-tea" in label for label in short), short
    assert all(re.search(r"orders landed: \d+; platform reported: \d+", label) for label in short)
    assert "incomplete_window" in dom and "raw_completeness_jd" in dom


def test_a_webhook_failure_never_shows_its_token():
    from orderhub.alerts import Webhook

    hook = Webhook("http://127.0.0.1:9/robot/send?access_token=SECRET-TOKEN", "slack")
    alert = Alert("unknown_status", "tmall", "s", None, None, "status 'X'", "1 orders")
    with pytest.raises(RuntimeError) as failure:
        hook.send([alert])
    assert "SECRET-TOKEN" not in str(failure.value) and "127.0.0.1:9" in str(failure.value)
    assert failure.value.__cause__ is None and failure.value.__suppress_context__
