"""Ordering per key on the SQLite adapter: a key's next event is never handed out
while an older one of that key is in flight, waiting for a retry, or replayed."""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict

import pytest

from eventbus import Event, encode

pytestmark = [pytest.mark.sqlite]


def msg(i: int, key: str | None):
    return encode(Event(type="acct.posted", data={"i": i}, source="/t", key=key))


def num(d) -> int:
    return int(d.message.body.decode().split(":")[1].rstrip("}"))


def check_invariant(db_path: str) -> None:
    """Per group and key, exactly the oldest delivery is unblocked."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT grp, key, id, blocked FROM deliveries WHERE key IS NOT NULL ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    first: set[tuple[int, str]] = set()
    for grp, key, ident, blocked in rows:
        head = (grp, key) not in first
        first.add((grp, key))
        assert blocked == (0 if head else 1), f"delivery {ident} of key {key}: blocked={blocked}"


def test_dead_letter_unblocks_and_replay_keeps_key_order(make_adapter, db_path):
    a = make_adapter()
    c = a.consumer("g", ["#"])
    a.publish([msg(i, "k") for i in range(4)])
    (d0,) = c.receive(10, 1)
    c.dead_letter(d0, "no")
    (d1,) = c.receive(10, 1)
    c.dead_letter(d1, "no")
    assert [num(d) for d in c.receive(10, 1)] == [2]  # the dead letters let the key go on
    check_invariant(db_path)
    c.close()
    assert a.replay_dead_letters("g") == 2
    check_invariant(db_path)
    c = a.consumer("g", ["#"])
    order = []
    while len(order) < 4:
        got = c.receive(10, 1)
        assert len(got) == 1, "two events of one key handed out together"
        order.append(num(got[0]))
        c.ack(got)
    assert order == [2, 3, 0, 1]  # replayed events queue up behind the waiting ones
    c.close()


@pytest.mark.parametrize("seed", range(6))
def test_random_settling_keeps_one_in_flight_per_key_in_order(make_adapter, db_path, seed):
    rnd = random.Random(seed)
    a = make_adapter(lease=30.0)
    members = [a.consumer("g", ["#"]) for _ in range(3)]
    next_i = 0
    published: dict[str | None, list[int]] = defaultdict(list)
    done: dict[str | None, list[int]] = defaultdict(list)
    in_flight: dict[str, int] = {}
    holding: list[list] = [[] for _ in members]
    for _step in range(250):
        op = rnd.random()
        m = rnd.randrange(len(members))
        if op < 0.3:
            batch = []
            for _ in range(rnd.randint(1, 5)):
                key = rnd.choice(["a", "b", "c", None])
                batch.append(msg(next_i, key))
                published[key].append(next_i)
                next_i += 1
            a.publish(batch)
        elif op < 0.55:
            for d in members[m].receive(rnd.randint(1, 6), 0):
                k = d.message.key
                if k is not None:
                    assert k not in in_flight, f"key {k}: {num(d)} while {in_flight[k]} in flight"
                    assert num(d) == next(i for i in published[k] if i not in done[k])
                    in_flight[k] = num(d)
                holding[m].append(d)
        elif holding[m]:
            d = holding[m].pop(rnd.randrange(len(holding[m])))
            k = d.message.key
            if op < 0.75:
                members[m].ack([d])
                done[k].append(num(d))
            elif op < 0.85:
                members[m].nack(d, 0)
            else:
                members[m].dead_letter(d, "random")
                done[k].append(num(d))
            in_flight.pop(k, None) if k is not None else None
        elif op > 0.97:  # a member leaves: what it held goes back
            members[m].close()
            for d in holding[m]:
                if d.message.key is not None:
                    in_flight.pop(d.message.key, None)
            holding[m] = []
            members[m] = a.consumer("g", ["#"])
        check_invariant(db_path)
    for key in ("a", "b", "c"):
        assert done[key] == published[key][: len(done[key])], f"key {key} settled out of order"
    for c in members:
        c.close()
