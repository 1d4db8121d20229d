"""A channel-neutral View as WeChat shapes: a WeCom template_card, a text message, robot markdown."""

from __future__ import annotations

import secrets

from services.i18n import Translator
from services.views import Button, View

PICK_KEY = "pick"  # the card button that submits the dropdown's choice
QUESTION_KEY = "choice"
MAX_BUTTONS = 6  # WeCom button_list
MAX_OPTIONS = 10  # WeCom button_selection
TITLE_CHARS = 36
SUBTITLE_CHARS = 600
TEXT_BYTES = 2048  # WeCom app text; longer is truncated by WeCom itself
ROBOT_BYTES = 4096  # group robot markdown (40058 above)


def new_task_id() -> str:
    """Unique per app; WeCom allows [0-9A-Za-z_-@], at most 128 bytes."""
    return "oz" + secrets.token_hex(12)


def cut_bytes(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - 3].decode(errors="ignore") + "…"


def text_message(view: View) -> dict:
    return {"msgtype": "text", "text": {"content": cut_bytes(view.text or "—", TEXT_BYTES)}}


def template_card(tr: Translator, view: View, task_id: str, *, fallback: Button | None = None,
                  courier_choice: bool = False) -> dict:
    """A button_interaction card. Up to 6 buttons are buttons; more (the couriers, a long order list)
    become a dropdown with one confirming button. A view without buttons keeps `fallback` (refresh)."""
    lines = (view.text or "—").splitlines()
    card: dict = {
        "card_type": "button_interaction",
        "source": {"desc": "Ozon", "desc_color": 0},
        "main_title": {"title": lines[0][:TITLE_CHARS]},
        "task_id": task_id,
    }
    rest = "\n".join(lines[1:]).strip()
    if rest:
        card["sub_title_text"] = rest[:SUBTITLE_CHARS]
    buttons = view.flat_buttons or ([fallback] if fallback else [])
    if len(buttons) <= MAX_BUTTONS:
        card["button_list"] = [{"text": b.label[:16], "style": 1 if i == 0 else 2, "key": b.action}
                               for i, b in enumerate(buttons)]
        return card
    title = tr.gettext("Courier") if courier_choice else tr.gettext("Choose")
    card["button_selection"] = {
        "question_key": QUESTION_KEY, "title": title,
        "option_list": [{"id": b.action, "text": b.label[:16]} for b in buttons[:MAX_OPTIONS]],
    }
    card["button_list"] = [{"text": tr.gettext("Confirm"), "style": 1, "key": PICK_KEY}]
    return card


def robot_markdown(tr: Translator, view: View, link: str | None) -> str:
    """Markdown for a group robot: the view's text and, when there is one, the action-page link."""
    lines = (view.text or "—").splitlines()
    body = ["**" + _md(lines[0]) + "**"] + [_md(line) for line in lines[1:]]
    label = tr.gettext("Open the action page")
    tail = f"\n[{label}]({link})" if link else ""
    return cut_bytes("\n".join(body), ROBOT_BYTES - len(tail.encode())) + tail


def _md(line: str) -> str:
    # robot markdown has no escaping: keep user text from opening links or emphasis
    return line.replace("[", "［").replace("]", "］").replace("*", "＊").replace("`", "'")
