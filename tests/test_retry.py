"""The retry policy on its own: decisions from outcomes, on a fake clock and fixed jitter.

No I/O and no sleeping here: ``RetryPolicy.decide`` only says how long to wait, or to give up.
The client's loops that follow it are tested against a real server in ``test_client.py``.
"""

from __future__ import annotations

import email.utils

import httpx
import pytest

from nb_mistral import RetryPolicy
from nb_mistral._retry import ErrorStatus, Progress, TransportFailure, progress_of

NOW = 1_800_000_000.0


def policy(**kwargs: object) -> RetryPolicy:
    """No jitter (the random factor is its midpoint) and a clock stopped at NOW."""
    options: dict[str, object] = {"random": lambda: 0.5, "clock": lambda: NOW, **kwargs}
    return RetryPolicy(**options)  # type: ignore[arg-type]


def test_backoff_doubles_up_to_its_cap() -> None:
    retry = policy(max_retries=10, backoff=0.5, max_backoff=3.0)
    waits = [retry.decide(n, ErrorStatus(503)) for n in range(6)]
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.75), (0.5, 1.0), (0.999999, 1.25)])
def test_jitter_spreads_each_wait(draw: float, factor: float) -> None:
    retry = policy(random=lambda: draw, backoff=2.0)
    assert retry.decide(0, ErrorStatus(500)) == pytest.approx(2.0 * factor)


def test_attempts_run_out() -> None:
    retry = policy(max_retries=2)
    assert retry.decide(0, ErrorStatus(503)) is not None
    assert retry.decide(1, ErrorStatus(503)) is not None
    assert retry.decide(2, ErrorStatus(503)) is None
    assert policy(max_retries=0).decide(0, ErrorStatus(503)) is None


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retried_statuses(status: int) -> None:
    assert policy().decide(0, ErrorStatus(status)) == 0.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501, 505])
def test_other_statuses_give_up(status: int) -> None:
    assert policy().decide(0, ErrorStatus(status, retry_after="1")) is None


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 2 ", 2.0),
        ("-4", 0.0),  # not in the past
        ("3600", 60.0),  # capped
        (email.utils.formatdate(NOW + 12, usegmt=True), 12.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        (email.utils.formatdate(NOW + 7200, usegmt=True), 60.0),
        ("Sun, 06 Nov 1994 08:49:37 -0000", 0.0),
    ],
)
def test_retry_after_in_seconds_and_as_an_http_date(header: str, wait: float) -> None:
    assert policy().decide(0, ErrorStatus(429, retry_after=header)) == wait


@pytest.mark.parametrize("header", ["soon", "", "nan", "Someday, 99 Foo 20xx"])
def test_an_unreadable_retry_after_falls_back_to_backoff(header: str) -> None:
    assert policy().decide(1, ErrorStatus(503, retry_after=header)) == 1.0


def test_the_retry_after_cap_is_a_setting() -> None:
    assert policy(max_retry_after=5.0).decide(0, ErrorStatus(429, retry_after="30")) == 5.0


def test_the_clock_is_the_policys() -> None:
    header = email.utils.formatdate(NOW + 20, usegmt=True)
    later = policy(clock=lambda: NOW + 15)
    assert later.decide(0, ErrorStatus(503, retry_after=header)) == 5.0


REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


@pytest.mark.parametrize(
    ("error", "progress"),
    [
        (httpx.ConnectError("refused", request=REQUEST), Progress.NOT_SENT),
        (httpx.ConnectTimeout("slow", request=REQUEST), Progress.NOT_SENT),
        (httpx.PoolTimeout("busy", request=REQUEST), Progress.NOT_SENT),
        (httpx.WriteTimeout("slow", request=REQUEST), Progress.NOT_SENT),
        (httpx.RemoteProtocolError("no answer", request=REQUEST), Progress.DROPPED),
        (httpx.ReadError("reset", request=REQUEST), Progress.DROPPED),
        (httpx.WriteError("reset", request=REQUEST), Progress.DROPPED),
        (httpx.ReadTimeout("silent", request=REQUEST), Progress.AWAITING_ANSWER),
        (httpx.LocalProtocolError("bad header", request=REQUEST), Progress.UNSENDABLE),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), Progress.UNSENDABLE),
    ],
)
def test_where_a_transport_failure_happened(error: httpx.HTTPError, progress: Progress) -> None:
    assert progress_of(error) is progress
    assert progress_of(error, body_began=True) is Progress.BODY_BEGAN


@pytest.mark.parametrize(
    ("progress", "retried"),
    [
        (Progress.NOT_SENT, True),
        (Progress.DROPPED, True),
        (Progress.AWAITING_ANSWER, False),  # the server may be working on it: no double bill
        (Progress.BODY_BEGAN, False),  # never after the body began
        (Progress.UNSENDABLE, False),
    ],
)
def test_transport_failures(progress: Progress, retried: bool) -> None:
    wait = policy().decide(0, TransportFailure(progress))
    assert (wait == 0.5) if retried else (wait is None)


def test_no_retry_on_a_read_timeout_after_the_request_was_sent() -> None:
    silent = httpx.ReadTimeout("timed out", request=REQUEST)
    assert policy(max_retries=5).decide(0, TransportFailure(progress_of(silent))) is None


def test_no_retry_after_the_body_began() -> None:
    cut = httpx.RemoteProtocolError("peer closed", request=REQUEST)
    outcome = TransportFailure(progress_of(cut, body_began=True))
    assert policy(max_retries=5).decide(0, outcome) is None


def test_the_defaults() -> None:
    default = RetryPolicy()
    assert (default.max_retries, default.backoff, default.max_backoff) == (2, 0.5, 8.0)
    assert 0.375 <= (default.decide(0, ErrorStatus(503)) or 0) <= 0.625
    assert "sleep" not in repr(default)
