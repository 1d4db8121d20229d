from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet

from services.links import ActionLinks
from services.security import SecretBox


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def make_links(clock: Clock, key: bytes | None = None) -> ActionLinks:
    return ActionLinks(SecretBox(key or Fernet.generate_key()), "https://bot.example/", clock, ttl=timedelta(hours=1))


def test_link_round_trip_names_member_and_posting():
    clock = Clock()
    links = make_links(clock)
    url = links.url(7, 42)
    assert url.startswith("https://bot.example/a/")
    claim = links.verify(url.rsplit("/", 1)[1])
    assert (claim.member_id, claim.posting_id) == (7, 42)
    assert links.verify(links.token(7)).posting_id is None


def test_expired_altered_and_foreign_links_are_refused():
    clock = Clock()
    links = make_links(clock)
    token = links.token(7, 42)
    encoded, signature = token.split(".")
    forged_body = ActionLinks(SecretBox(Fernet.generate_key()), "x", clock).token(8, 42)
    assert links.verify(forged_body) is None
    assert links.verify(forged_body.split(".")[0] + "." + signature) is None
    assert links.verify(encoded + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B")) is None
    assert links.verify("garbage") is None and links.verify("") is None and links.verify("a.b.c") is None
    clock.now += timedelta(hours=1, seconds=1)
    assert links.verify(token) is None
