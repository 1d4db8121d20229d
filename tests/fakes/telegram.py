"""The fake Bot API now ships in the package (bot/telegram_fake.py) so `ozonbot bench` runs from an
installed copy without tests/; this module keeps the tests' import path."""

from bot.telegram_fake import (  # noqa: F401
    BOT_USERNAME,
    DEFAULT_TOKEN,
    BotMessage,
    Call,
    FakeBotAPI,
    TelegramAPIError,
    UploadedFile,
)
