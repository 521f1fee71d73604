"""The carrier pool and the round-robin it shares with the SMPP carrier's binds, with real loopback carriers."""

from carriers.loopback import LoopbackCarrier
from carriers.pool import CarrierPool, RoundRobin


def test_round_robin_takes_turns_after_the_last_taken_and_skips_what_is_not_ready():
    ready = {"a": True, "b": False, "c": True}
    turns = RoundRobin(["a", "b", "c"], ready.__getitem__)
    assert [turns.pick() for _ in range(4)] == ["a", "c", "a", "c"]
    ready["b"] = True
    assert [turns.pick() for _ in range(4)] == ["a", "b", "c", "a"]
    ready.update(a=False, b=False, c=False)
    assert turns.pick() is None


async def test_the_pool_prefers_the_carrier_named_while_it_is_ready():
    a, b, c = (LoopbackCarrier(name) for name in "abc")
    pool = CarrierPool([a, b, c])
    assert not pool.ready and pool.pick() is None
    for carrier in (a, c):
        await carrier.start()
    assert pool.ready
    assert [pool.pick().name for _ in range(3)] == ["a", "c", "a"]
    assert pool.pick(prefer="a").name == "a"  # the one that took a message's other parts
    assert pool.pick(prefer="b").name == "c"  # not ready: the next in turn
    await a.close()
    assert [pool.pick(prefer="a").name for _ in range(2)] == ["c", "c"]
