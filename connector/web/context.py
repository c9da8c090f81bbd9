"""What a request's code reaches through the app (flaskr's `db.py`): the Runtime the factory was given, and the
provider accounts built from it. Imported at module top by every blueprint; it imports no blueprint, so there is
no import cycle with `connector.web`."""

from __future__ import annotations

from flask import current_app

from connector.entrypoints.bootstrap import Accounts, Runtime

RUNTIME_KEY = "connector"
_ACCOUNTS_KEY = "connector.accounts"


def current_runtime() -> Runtime:
    """The Runtime of the app serving this request (create_app keeps it in the app's extensions)."""
    runtime: Runtime = current_app.extensions[RUNTIME_KEY]
    return runtime


def accounts() -> Accounts:
    """The provider accounts (adapters, rate limits) of this app, built on first use: one set per process, so a
    provider's rate limit holds across requests."""
    if _ACCOUNTS_KEY not in current_app.extensions:
        current_app.extensions[_ACCOUNTS_KEY] = Accounts(dict(current_runtime().tenants))
    built: Accounts = current_app.extensions[_ACCOUNTS_KEY]
    return built
