"""A fake Telegram Bot API server on loopback (see server.py for how to drive it).

Layout: server.py (assembly, lifecycle, HTTP plumbing), limits.py (flood limits, off by default), api.py (the `_m_*` methods), formatting.py
(HTML, MarkdownV2 and legacy Markdown), world.py (users, chats, messages, files), driver.py (simulated
users, waits, faults, webhook delivery), errors.py.
"""

from .errors import TelegramAPIError
from .limits import FloodLimits
from .server import FakeBotAPI
from .world import BOT_USERNAME, DEFAULT_TOKEN, BotMessage, Call, UploadedFile

__all__ = ["BOT_USERNAME", "DEFAULT_TOKEN", "BotMessage", "Call", "FakeBotAPI", "FloodLimits", "TelegramAPIError",
           "UploadedFile"]
