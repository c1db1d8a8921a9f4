"""tools/book.py's workaround for zmq.asyncio's missed wake-ups: kernel messages are polled in short slices."""

from __future__ import annotations

import asyncio
from queue import Empty

import pytest
from jupyter_client.channels import AsyncZMQSocketChannel

import book  # tools/book.py (on sys.path through conftest)


class MissedWakeup:
    """A socket whose first ``misses`` polls time out although a message is there (the pyzmq bug)."""

    def __init__(self, misses: int, has_message: bool = True) -> None:
        self.misses, self.has_message, self.polls = misses, has_message, []

    async def poll(self, timeout_ms: int | None) -> int:
        self.polls.append(timeout_ms)
        if len(self.polls) <= self.misses or not self.has_message:
            await asyncio.sleep(timeout_ms / 1000)  # the poll runs to its timeout
            return 0
        return 1


def _channel(sock: MissedWakeup) -> AsyncZMQSocketChannel:
    ch = AsyncZMQSocketChannel.__new__(AsyncZMQSocketChannel)
    ch.socket = sock

    async def recv() -> dict:
        return {"msg": "reply"}

    ch._recv = recv
    return ch


@pytest.fixture(autouse=True)
def fast_slices(monkeypatch):
    monkeypatch.setattr(book, "POLL_SLICE_S", 0.01)
    book.poll_in_slices()


def test_a_missed_wakeup_costs_one_slice_not_the_whole_timeout():
    sock = MissedWakeup(misses=3)
    assert asyncio.run(_channel(sock).get_msg(timeout=900)) == {"msg": "reply"}
    assert len(sock.polls) == 4 and max(sock.polls) == 10  # 10 ms slices, never one 900 s poll


def test_no_timeout_polls_until_the_message_comes():
    sock = MissedWakeup(misses=5)
    assert asyncio.run(_channel(sock).get_msg(timeout=None)) == {"msg": "reply"}
    assert len(sock.polls) == 6


def test_an_absent_message_still_times_out():
    sock = MissedWakeup(misses=0, has_message=False)
    with pytest.raises(Empty):
        asyncio.run(_channel(sock).get_msg(timeout=0.05))
    assert 1 <= len(sock.polls) <= 10
