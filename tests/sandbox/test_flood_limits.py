"""The fake Bot API's flood limits, on a clock the test moves: Telegram's rates, the bursts we chose, and
longer waits for repeated floods (sandbox/telegram/limits.py)."""

from __future__ import annotations

from sandbox.telegram.limits import FloodGate, FloodLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_private_chat_takes_a_burst_of_three_then_one_a_second():
    clock = Clock()
    gate = FloodGate(FloodLimits(), clock)
    assert [gate.check("sendMessage", 42) for _ in range(3)] == [None, None, None]
    assert gate.check("sendMessage", 42) == 1
    assert gate.check("sendMessage", "43") is None, "another chat has its own allowance"
    assert gate.check("answerCallbackQuery", 42) is None, "a callback answer is no message"
    clock.now += 1.0
    assert gate.check("sendMessage", 42) is None  # the 429's wait has passed and the bucket has one again


def test_a_repeated_flood_doubles_the_wait_and_the_wait_holds():
    clock = Clock()
    gate = FloodGate(FloodLimits(), clock)
    for _ in range(3):
        gate.check("sendMessage", 7)
    assert gate.check("sendMessage", 7) == 1
    clock.now += 0.5
    assert gate.check("sendMessage", 7) == 2, "flooding again within the minute: twice the wait"
    clock.now += 1.5  # the bucket would allow one, but the 2 s wait is not over
    assert gate.check("sendMessage", 7) == 4
    assert gate.refused == 3


def test_a_group_takes_twenty_a_minute_and_the_token_thirty_a_second():
    clock = Clock()
    gate = FloodGate(FloodLimits(), clock)
    assert all(gate.check("sendMessage", -100123) is None for _ in range(20))
    assert gate.check("sendMessage", -100123) == 3  # 60 s / 20 a minute
    clock.now += 10.0
    sent = sum(gate.check("sendMessage", chat) is None for chat in range(1, 41))
    assert sent == 30 and gate.refused == 11, "30 a second across chats, whatever each chat allows"
