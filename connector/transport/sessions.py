"""HTTP sessions that read the environment's proxy and CA settings once per origin, not on every call.

requests (with `trust_env`, its default) scans the whole process environment on every call for proxies and a CA
bundle: a third of the CPU of a send to a fast provider. The environment of a running process does not change,
so our sessions switch that off and `connector.transport.wire.request` passes what `environment` read once.
"""

from __future__ import annotations

import os
from functools import lru_cache

import requests


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


@lru_cache(maxsize=256)
def environment(origin: str) -> tuple[dict[str, str], str | bool]:
    """What requests would read from the environment for this origin: its proxies (HTTPS_PROXY, NO_PROXY…) and
    the CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE)."""
    verify: str | bool = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return requests.utils.get_environ_proxies(origin), verify
