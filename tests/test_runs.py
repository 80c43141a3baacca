"""What a by-hand run (`orderhub run`, `orderhub demo`) consists of, and what
it says when it cannot complete."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orderhub.config import Shop, parse_time
from orderhub.extract import RetryPolicy, extract_shop
from orderhub_tools import cli
from orderhub_tools.runner import RunReport, ledger_report, plan_runs
from orderhub_tools.sandbox import shop_credentials
from orderhub_tools.sandbox.server import SandboxSpec, serve
from tests.chaos_net import VirtualClock

LAG = timedelta(minutes=3)


def spans(steps):
    return [(s.dag_id, s.span[0].strftime("%d %H:%M"), s.span[1].strftime("%d %H:%M"),
             s.clock.strftime("%d %H:%M"), s.attempts) for s in steps]


def test_a_window_on_the_hour_is_hourly_runs_then_the_closing_repairs():
    steps = plan_runs(parse_time("2026-11-11T00:00"), parse_time("2026-11-11T02:00"), lag=LAG,
                      settle=timedelta(hours=4))
    assert spans(steps) == [
        ("orders_incremental", "11 00:00", "11 01:00", "11 01:03", 1),
        ("orders_incremental", "11 01:00", "11 02:00", "11 02:03", 1),
        ("orders_repair", "11 00:00", "11 02:00", "11 02:03", 3),   # the whole range
        ("orders_repair", "11 00:00", "11 02:00", "11 06:03", 3),   # once late updates show
    ]


def test_a_window_off_the_hour_syncs_its_partial_hours_exactly():
    steps = plan_runs(parse_time("2026-11-11T09:20"), parse_time("2026-11-11T11:50"), lag=LAG)
    assert spans(steps) == [
        ("orders_repair", "11 09:20", "11 10:00", "11 10:03", 1),
        ("orders_incremental", "11 10:00", "11 11:00", "11 11:03", 1),
        ("orders_repair", "11 11:00", "11 11:50", "11 11:53", 1),
        ("orders_repair", "11 09:20", "11 11:50", "11 11:53", 3),
    ]
    inside = plan_runs(parse_time("2026-11-11T09:20"), parse_time("2026-11-11T09:40"), lag=LAG)
    assert spans(inside)[0] == ("orders_repair", "11 09:20", "11 09:40", "11 09:43", 1)
    with pytest.raises(ValueError, match="reversed range"):
        plan_runs(parse_time("2026-11-11T10:00"), parse_time("2026-11-11T09:00"), lag=LAG)
    # no window: only the history sync and the reconciliation (tests/test_reconciliation.py)
    only = plan_runs(parse_time("2026-11-08T00:00"), parse_time("2026-11-08T00:00"), lag=LAG,
                     history=timedelta(days=9), settlement_days=3)
    assert [s.dag_id for s in only] == ["orders_repair", "settlements_daily"]


def test_settlement_days_are_whole_beijing_days_and_history_reaches_the_repair():
    """A window starting at 01:00 reconciles the whole days before its day (PDD's
    bills are per Beijing day); the closing repair reaches back into the synced
    history by the repair DAG's rolling span, where updates that were not yet
    visible at the history sync are."""
    steps = plan_runs(parse_time("2026-11-11T01:00"), parse_time("2026-11-11T02:00"), lag=LAG,
                      history=timedelta(days=3), settlement_days=2)
    assert spans(steps) == [
        ("orders_repair", "08 01:00", "11 01:00", "11 01:03", 1),
        ("settlements_daily", "09 00:00", "11 00:00", "11 01:03", 1),
        ("orders_incremental", "11 01:00", "11 02:00", "11 02:03", 1),
        ("orders_repair", "10 21:00", "11 02:00", "11 02:03", 3),
    ]


@pytest.fixture()
def outage_ledger(clean_warehouse):
    """A PDD shop whose gateway answers 504 to everything, read through the
    real client and extraction (on a virtual clock: no real waiting)."""
    shops = [("pdd", "pdd-down")]
    server = serve(SandboxSpec(seed=5, shops=shops, scale=0.02, faults="outage"))
    try:
        creds = shop_credentials(f"http://127.0.0.1:{server.server_address[1]}", 5, "pdd",
                                 "pdd-down", ["pdd-down"])
        result = extract_shop(Shop("pdd", "pdd-down", "unused"), parse_time("2026-11-11T00:00"),
                              parse_time("2026-11-11T01:00"), run_id="t", credentials=creds,
                              policy=RetryPolicy(breaker_patience=60), clock=VirtualClock())
    finally:
        server.shutdown()
    assert result.windows_failed >= 2  # split on the 504s, every piece failed
    return clean_warehouse


def test_a_run_that_cannot_complete_says_what_is_open_and_why(outage_ledger, monkeypatch,
                                                              capsys):
    """No traceback: the summary, every open window with the ledger's reason,
    and exit 1."""
    report = ledger_report(RunReport(runs=[("orders_repair", parse_time("2026-11-11T01:00"),
                                            False)]))
    assert report.windows_open >= 2 and not report.complete
    monkeypatch.setattr("orderhub_tools.runner.run", lambda *a, **k: report)
    monkeypatch.setattr("orderhub_tools.runner.SandboxTarget.discover", classmethod(lambda cls: None))
    code = cli.main(["run", "--start", "2026-11-11T00:00", "--end", "2026-11-11T01:00"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"still open: {report.windows_open}" in out
    listed = [line for line in out.splitlines() if line.startswith("  pdd/pdd-down orders [11-11")]
    assert len(listed) == report.windows_open
    assert all(" failed: pdd error " in line and "504" in line for line in listed)
    assert "the last DAG run (orders_repair) failed" in out


def test_a_manual_span_is_the_repair_span_even_when_it_is_the_runs_own_hour(clean_warehouse):
    """The by-hand run's closing repair of a one-hour range passes params equal
    to its data interval: they must still win over the rolling span (which
    reaches hours back and landed orders from before the range)."""
    from orderhub.repair import plan_run

    a, b = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:00")
    shops = [Shop("pdd", "p1", "c"), Shop("mall", "m1", "c")]
    manual = plan_run({"start": a.isoformat(), "end": b.isoformat()}, a, b, shops=shops)
    assert [job["spans"] for job in manual] == [[(a.isoformat(), b.isoformat())]] * 2
    scheduled = plan_run(None, a, b, shops=shops)
    assert scheduled[0]["spans"] == [((b - timedelta(hours=4)).isoformat(), b.isoformat())]
    # settlements: only the shops whose platform has a settlement API
    bills = plan_run({"start": "2026-11-10T00:00", "end": "2026-11-11T00:00"}, a, b, shops=shops,
                     entity="settlements")
    assert [job["shop"]["platform"] for job in bills] == ["pdd"]


def test_a_repair_tried_again_re_pulls_only_what_is_still_open(outage_ledger):
    """The closing repair's first try reads its whole span; its retries read
    the ledger's open windows alone (what the first try landed stays landed;
    reading it again would only meet the faults again)."""
    from orderhub.repair import plan_run

    a, b = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:00")
    step = plan_runs(a, b, lag=LAG)[-1]
    assert step.dag_id == "orders_repair" and step.attempts == 3
    shops = [Shop("pdd", "pdd-down", "c"), Shop("pdd", "pdd-fine", "c")]
    first = plan_run(step.conf_for(1), a, b, url=outage_ledger, shops=shops)
    again = plan_run(step.conf_for(2), a, b, url=outage_ledger, shops=shops)
    assert [job["shop"]["shop_id"] for job in first] == ["pdd-down", "pdd-fine"]
    assert (a.isoformat(), b.isoformat()) in first[0]["spans"]
    # the retry: one job, the open windows of the failing shop, not the span
    assert [job["shop"]["shop_id"] for job in again] == ["pdd-down"]
    assert len(again[0]["spans"]) == again[0]["open_windows"] >= 2
    assert (a.isoformat(), b.isoformat()) not in again[0]["spans"]
    assert step.conf_for(2)["live"] and not step.conf_for(1).get("open_only")


def test_a_run_reads_its_windows_oldest_first_each_once(clean_warehouse):
    """A repair's open window that is also one of its span's windows is read
    once, and the newest window last (where an index still catching up is
    given the most time), whatever order the spans come in."""
    shops = [("pdd", "pdd-ok")]
    server = serve(SandboxSpec(seed=5, shops=shops, scale=0.02))
    read = []
    try:
        creds = shop_credentials(f"http://127.0.0.1:{server.server_address[1]}", 5, "pdd",
                                 "pdd-ok", ["pdd-ok"])
        from orderhub.extract import extract_windows

        newest = (parse_time("2026-11-11T01:30"), parse_time("2026-11-11T01:32"))
        extract_windows(Shop("pdd", "pdd-ok", "unused"),
                        [newest, (parse_time("2026-11-11T00:00"), newest[1])], run_id="t",
                        credentials=creds, database_url=clean_warehouse, clock=VirtualClock(),
                        progress=lambda end, result: read.append(end))
    finally:
        server.shutdown()
    assert read == sorted(read) and len(read) == len(set(read))
    assert read[-1] == newest[1] and read.count(newest[1]) == 1
