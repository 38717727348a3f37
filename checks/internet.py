"""`internet`: DNS and HTTP(S) reachability of CONNECTIVITY_URLS, independent of the X API."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from checks.base import CheckFailed, CheckWarning, Passed
from utils.failure_classes import FailureClass
from utils.http_client import describe_error

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "internet"


def probe(ctx: MonitorContext, url: str) -> dict[str, Any]:
    """Resolve the host, then send one bounded GET; any HTTP answer counts as reachable."""
    import requests

    host = urlsplit(url).hostname or ""
    started = time.perf_counter()
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as exc:
        return {"url": url, "ok": False, "error": f"DNS: {exc}"}
    try:
        response = ctx.http.get(url, allow_redirects=False, stream=True)
        response.close()
    except requests.RequestException as exc:
        return {"url": url, "ok": False, "error": describe_error(exc)}
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"url": url, "ok": True, "http_status": response.status_code, "latency_ms": latency_ms}


def check(ctx: MonitorContext) -> Passed:
    """Ok if every URL answers, warning if some fail, critical if none answers."""
    urls = ctx.settings.connectivity_urls
    if not urls:
        raise CheckWarning("no CONNECTIVITY_URLS configured")
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        probes = list(pool.map(lambda url: probe(ctx, url), urls))
    data = {"urls": probes}
    reached = [p for p in probes if p["ok"]]
    failed = [f"{p['url']} ({p['error']})" for p in probes if not p["ok"]]
    # Any HTTP answer proves the path works, but an error status is worth seeing in the detail.
    odd = [f"{p['url']} HTTP {p['http_status']}" for p in reached if p["http_status"] >= 400]
    answered_with = f"; answered with an error status: {', '.join(odd)}" if odd else ""
    if not reached:
        raise CheckFailed(f"offline: none of {len(urls)} URLs answered: {'; '.join(failed)}",
                          failure_class=FailureClass.NETWORK, data=data)
    if failed:
        raise CheckWarning(f"{len(reached)}/{len(urls)} URLs answered; failed: {'; '.join(failed)}"
                           f"{answered_with}", data=data)
    fastest = min(p["latency_ms"] for p in reached)
    return Passed(f"{len(reached)}/{len(urls)} URLs answered (fastest {fastest:g} ms){answered_with}",
                  data)
