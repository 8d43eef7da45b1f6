"""The admin-list benchmark reads wrk's extra percentiles and the rows of a list page correctly (no load here)."""

from __future__ import annotations

from bench.harness import parse_wrk_output
from bench.scenarios.admin_list import footer_count, percentiles, shown_references, times

WRK_OUTPUT = """\
Running 15s test @ http://127.0.0.1:8931/admin/appointment/list
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    45.10ms   20.75ms 300.02ms   87.06%
    Req/Sec    22.67      5.72    30.00     60.00%
  Latency Distribution
     50%   36.10ms
     75%   50.74ms
     90%   63.69ms
     99%  116.50ms
  365 requests in 15.01s, 35.15MB read
Requests/sec:     24.32
Transfer/sec:      2.34MB
PERCENTILE 50 36104
PERCENTILE 90 63690
PERCENTILE 95 76321
PERCENTILE 99 116502
"""


def test_the_lua_percentiles_are_read_in_milliseconds():
    result = parse_wrk_output(WRK_OUTPUT)
    assert percentiles(result) == {50: 36.104, 90: 63.69, 95: 76.321, 99: 116.502}
    assert result.requests == 365


def test_references_of_a_page_in_order_each_once_and_the_footer():
    html = (b'<td><a href="/x/1">K7MX9-3QD2A</a></td><td>2EEJY-FBF8P</td><td>K7MX9-3QD2A</td>'
            b"<td>MRN-00000123</td><td>ABCDE-FGHIJ</td>"  # I is not in the alphabet: no reference
            b"<p>Showing 1 to 25 of more than 10,000 items</p>")
    assert shown_references(html) == ["K7MX9-3QD2A", "2EEJY-FBF8P"]
    assert footer_count(html) == "more than 10,000"
    assert times(2.54) == "2.5 x" and times(168.4) == "168 x"
