"""Every PromQL expression in alerts/ and dashboards/ parses in a real Prometheus.

Starts Debian's `prometheus` binary on a free loopback port with an empty TSDB and
sends each expression to /api/v1/query; a parse error comes back as `bad_data`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from promql import all_exprs
from systools import query, running_prometheus

pytestmark = pytest.mark.promtool


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on loopback with nothing to scrape; yields its base URL."""
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), "global: {}\n") as base:
        yield base


def test_every_expression_parses(prometheus: str) -> None:
    """Prometheus accepts every rule and dashboard expression (no bad_data)."""
    exprs = all_exprs()
    failures = []
    for e in exprs:
        _status, body = query(prometheus, e.promql)
        if body.get("status") != "success":
            failures.append(f"{e.where}: {body.get('errorType')}: {body.get('error')}")
    assert [] == failures
    assert len(exprs) > 50  # the collection found the dashboards and the rules


def test_a_broken_expression_is_reported_as_bad_data(prometheus: str) -> None:
    """The check can fail: a malformed expression comes back as bad_data."""
    status, body = query(prometheus, "sum by (model (rate(x[5m]))")
    assert (400, "error", "bad_data") == (status, body["status"], body["errorType"])
