"""Channel adapters, one module per provider, all behind connector.channels.base.Channel."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import requests

from connector.channels.base import Channel

_CLASSES = {
    "sandbox": "connector.channels.sandbox:SandboxChannel",
    "wahelp": "connector.channels.wahelp:WahelpChannel",
    "smsru": "connector.channels.smsru:SmsRuChannel",
    "smsc": "connector.channels.smsc:SmscChannel",
    "max_bot": "connector.channels.max_bot:MaxBotChannel",
    "telegram_bot": "connector.channels.telegram_bot:TelegramBotChannel",
}


def channel_class(provider: str) -> type[Channel]:
    module, _, name = _CLASSES[provider].partition(":")
    return getattr(import_module(module), name)


def build_channel(provider: str, config: Mapping[str, Any], session: requests.Session | None = None) -> Channel:
    return channel_class(provider)(config, session)
