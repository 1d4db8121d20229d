"""Telegram's text formatting: HTML, MarkdownV2 and legacy Markdown parsed into (text, entities),
strict like the Bot API (reference/telegram.md)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from .errors import _bad


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2



# --------------------------------------------------------------------------- text parsing


class _HTMLEntities(HTMLParser):
    """Telegram's HTML subset → (plain text, entities); raises on what Telegram rejects."""

    _SIMPLE = {
        "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
        "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
        "tg-spoiler": "spoiler", "code": "code", "pre": "pre",
    }  # fmt: skip

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.parts: list[str] = []
        self.length = 0
        self.stack: list[tuple[str, int, dict[str, Any] | None]] = []
        self.entities: list[dict[str, Any]] = []
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def _byte_offset(self) -> int:
        line, col = self.getpos()
        index = self._line_starts[line - 1] + col
        return len(self.source[:index].encode("utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        entity: dict[str, Any] | None
        if tag in self._SIMPLE:
            entity = {"type": self._SIMPLE[tag]}
            if tag == "code" and self.stack and self.stack[-1][0] == "pre":
                language = (attributes.get("class") or "").removeprefix("language-")
                if language and self.stack[-1][2] is not None:
                    self.stack[-1][2]["language"] = language
                entity = None  # <pre><code class=...> is one pre entity
        elif tag == "span" and attributes.get("class") == "tg-spoiler":
            entity = {"type": "spoiler"}
        elif tag == "a":
            href = attributes.get("href") or ""
            match = re.match(r"tg://user\?id=(\d+)$", href)
            if match:
                entity = {"type": "text_mention", "user": {"id": int(match.group(1)), "is_bot": False}}
            else:
                entity = {"type": "text_link", "url": href} if href else None
        elif tag == "blockquote":
            entity = {"type": "expandable_blockquote" if "expandable" in attributes else "blockquote"}
        elif tag == "tg-emoji" and attributes.get("emoji-id"):
            entity = {"type": "custom_emoji", "custom_emoji_id": attributes["emoji-id"]}
        else:
            raise _bad(
                f'can\'t parse entities: Unsupported start tag "{tag}" at byte offset {self._byte_offset()}'
            )
        self.stack.append((tag, self.length, entity))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            raise _bad(f"can't parse entities: Unexpected end tag at byte offset {self._byte_offset()}")
        open_tag, start, entity = self.stack[-1]
        if open_tag != tag:
            raise _bad(
                f"can't parse entities: Unmatched end tag at byte offset {self._byte_offset()}, "
                f'expected "</{open_tag}>", found "</{tag}>"'
            )
        self.stack.pop()
        if entity is not None and self.length > start:
            self.entities.append({**entity, "offset": start, "length": self.length - start})

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.length += _utf16_len(data)

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        self.feed(self.source)
        self.close()
        if self.stack:
            raise _bad(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{self.stack[-1][0]}\""
            )
        return "".join(self.parts), sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))


_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")


def _parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram MarkdownV2 → (plain text, entities); raises on unescaped reserved characters."""
    out: list[str] = []
    length = 0
    stack: list[tuple[str, int, int]] = []  # (marker, utf16 start, byte offset)
    entities: list[dict[str, Any]] = []
    names = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}

    def byte_at(index: int) -> int:
        return len(source[:index].encode("utf-8"))

    def emit(text: str) -> None:
        nonlocal length
        out.append(text)
        length += _utf16_len(text)

    def read_until(index: int, closer: str, what: str, start: int, *, raw: bool = False) -> tuple[str, int]:
        chunk: list[str] = []
        while index < len(source):
            if source[index] == "\\" and index + 1 < len(source):
                chunk.append(source[index : index + 2] if raw else source[index + 1])
                index += 2
                continue
            if source.startswith(closer, index):
                return "".join(chunk), index + len(closer)
            chunk.append(source[index])
            index += 1
        raise _bad(f"can't parse entities: Can't find end of {what} entity at byte offset {byte_at(start)}")

    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            if i + 1 >= len(source):
                raise _bad(
                    "can't parse entities: Character '\\' is reserved and must be escaped with the preceding '\\'"
                )
            emit(source[i + 1])
            i += 2
        elif source.startswith("```", i):
            content, end = read_until(i + 3, "```", "Pre", i)
            language, _, body = content.partition("\n") if "\n" in content else ("", "", content)
            start = length
            emit(body)
            entity: dict[str, Any] = {"type": "pre", "offset": start, "length": length - start}
            if language.strip():
                entity["language"] = language.strip()
            entities.append(entity)
            i = end
        elif ch == "`":
            content, end = read_until(i + 1, "`", "Code", i)
            start = length
            emit(content)
            entities.append({"type": "code", "offset": start, "length": length - start})
            i = end
        elif ch in "*~_" or source.startswith("||", i):
            marker = "__" if source.startswith("__", i) else "||" if source.startswith("||", i) else ch
            if stack and stack[-1][0] == marker:
                _, start, _ = stack.pop()
                if length > start:
                    entities.append({"type": names[marker], "offset": start, "length": length - start})
            elif any(m == marker for m, _, _ in stack):
                raise _bad(
                    f"can't parse entities: Can't find end of {names[stack[-1][0]].title()} entity "
                    f"at byte offset {stack[-1][2]}"
                )
            else:
                stack.append((marker, length, byte_at(i)))
            i += len(marker)
        elif ch == "[" or source.startswith("![", i):
            opener = 2 if ch == "!" else 1
            label, end = read_until(i + opener, "]", "TextUrl", i, raw=True)  # parsed below
            if not source.startswith("(", end):
                raise _bad(
                    f"can't parse entities: Can't find end of TextUrl entity at byte offset {byte_at(i)}"
                )
            url, end = read_until(end + 1, ")", "TextUrl", i)
            label_text, label_entities = _parse_markdown_v2(label)
            start = length
            for nested in label_entities:
                entities.append({**nested, "offset": nested["offset"] + start})
            emit(label_text)
            kind = (
                {"type": "custom_emoji", "custom_emoji_id": url.rpartition("=")[2]}
                if opener == 2
                else {"type": "text_link", "url": url}
            )
            entities.append({**kind, "offset": start, "length": length - start})
            i = end
        elif ch == ">" and (i == 0 or source[i - 1] == "\n"):
            i += 1  # blockquote line marker
        elif ch in _MDV2_RESERVED:
            raise _bad(
                f"can't parse entities: Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            emit(ch)
            i += 1
    if stack:
        marker, _, offset = stack[-1]
        raise _bad(
            f"can't parse entities: Can't find end of {names[marker].title()} entity at byte offset {offset}"
        )
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _parse_markdown_legacy(source: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    i = 0
    names = {"*": "bold", "_": "italic", "`": "code"}
    while i < len(source):
        ch = source[i]
        if ch == "\\" and i + 1 < len(source) and source[i + 1] in "*_`[":
            out.append(source[i + 1])
            i += 2
        elif ch in names or source.startswith("```", i):
            marker = "```" if source.startswith("```", i) else ch
            end = source.find(marker, i + len(marker))
            if end < 0:
                offset = len(source[:i].encode("utf-8"))
                raise _bad(
                    f"can't parse entities: Can't find end of the entity starting at byte offset {offset}"
                )
            content = source[i + len(marker) : end]
            start = _utf16_len("".join(out))
            out.append(content)
            kind = "pre" if marker == "```" else names[marker]
            entities.append({"type": kind, "offset": start, "length": _utf16_len(content)})
            i = end + len(marker)
        else:
            out.append(ch)
            i += 1
    return "".join(out), entities


def _render(text: Any, parse_mode: str | None, entities: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if isinstance(entities, list):
        return text, entities
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _HTMLEntities(text).parse()
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown_legacy(text)
    if mode:
        raise _bad(f"unsupported parse_mode {parse_mode!r}")
    return text, []
