"""The benchmark harness reads wrk's output and writes its tables correctly (no load is run here)."""

from __future__ import annotations

import math

import pytest

from bench.harness import markdown_table, parse_wrk_output
from bench.harness.wrk import WrkError

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8931/x
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    31.48ms   11.75ms    1.02s    87.06%
    Req/Sec   800.67    322.72     2.14k    60.00%
  Latency Distribution
     50%  780.00us
     75%    1.74ms
     90%   43.69ms
     99%    1.50s
  16021 requests in 10.01s, 843.15MB read
  Socket errors: connect 0, read 2, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:   1600.51
Transfer/sec:    839.86KB
"""


def test_wrk_output_is_parsed_with_units():
    r = parse_wrk_output(WRK_OUTPUT)
    assert r.requests == 16021
    assert r.seconds == pytest.approx(10.01)
    assert r.rps == pytest.approx(1600.51)
    assert r.p50 == pytest.approx(0.78)  # microseconds -> ms
    assert r.latency_ms[75] == pytest.approx(1.74)
    assert r.p90 == pytest.approx(43.69)
    assert r.p99 == pytest.approx(1500.0)  # seconds -> ms
    assert r.latency_avg_ms == pytest.approx(31.48)
    assert r.latency_max_ms == pytest.approx(1020.0)
    assert r.socket_errors == {"connect": 0, "read": 2, "write": 0, "timeout": 7}
    assert r.non_2xx == 12
    assert r.errors == 21


def test_clean_wrk_run_has_no_errors_and_missing_percentiles_are_nan():
    text = "\n".join(line for line in WRK_OUTPUT.splitlines()
                     if "errors" not in line and "Non-2xx" not in line and "99%" not in line)
    r = parse_wrk_output(text)
    assert r.errors == 0
    assert math.isnan(r.p99)


def test_failed_wrk_run_is_an_error():
    with pytest.raises(WrkError):
        parse_wrk_output("unable to connect to 127.0.0.1:9 Connection refused\n")


def test_markdown_table_aligns_and_escapes():
    table = markdown_table(["page", "req/s"], [("a|b", "1,500")])
    assert table.splitlines() == ["| page | req/s |", "|---|---:|", "| a\\|b | 1,500 |"]
    with pytest.raises(ValueError):
        markdown_table(["one", "two"], [("only one",)])
