"""The event loop's broker between the database's live events and the open streams: a burst
goes to each stream in one hand-on, only to the streams of its unit, and a stream too far
behind is let go (its browser reconnects and catches up from the table)."""

from __future__ import annotations

import asyncio

from flapwatch.asgi import BEHIND_MAX_BYTES, HAND_ON_S, Broker


def _run(body):
    return asyncio.run(body())


def test_a_burst_of_events_reaches_each_stream_of_its_unit_in_one_hand_on(app):
    broker = Broker(app)

    async def body():
        ward, other = broker.add(1), broker.add(2)
        for event_id in (7, 8, 9):
            broker.take(1, event_id, "check.recorded", f'{{"id":{event_id}}}')
        assert not ward.wake.is_set()  # held for the hand-on
        await asyncio.sleep(HAND_ON_S * 2)
        assert ward.wake.is_set() and not other.wake.is_set()
        return [event_id for event_id, _ in ward.take()], broker.last

    taken, last = _run(body)
    assert taken == [7, 8, 9]
    assert last == 9


def test_events_of_a_unit_nobody_here_follows_are_not_kept(app):
    broker = Broker(app)

    async def body():
        broker.add(1)
        broker.take(2, 5, "check.recorded", '{"id":5}')
        await asyncio.sleep(HAND_ON_S * 2)
        return broker._pending, broker.last

    pending, last = _run(body)
    assert pending == {} and last == 5  # still where a reconnection would read from


def test_a_stream_too_far_behind_is_let_go_and_the_others_go_on(app):
    broker = Broker(app)
    data = "x" * 1000

    async def body():
        slow, keeping_up = broker.add(1), broker.add(1)
        for event_id in range(1, BEHIND_MAX_BYTES // 1000 + 10):
            broker.take(1, event_id, "check.recorded", data)
            if event_id % 50 == 0:
                await asyncio.sleep(HAND_ON_S * 2)
                keeping_up.take()  # its stream sent them
        await asyncio.sleep(HAND_ON_S * 2)
        return slow, keeping_up

    slow, keeping_up = _run(body)
    assert slow.behind and slow.waiting == []
    assert not keeping_up.behind and keeping_up.waiting
    assert broker.streams[1] == {keeping_up}
