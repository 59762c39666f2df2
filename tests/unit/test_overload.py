import asyncio

import pytest

from actors.domain.errors import Overloaded
from serve_app.overload import InFlightLimiter

pytestmark = pytest.mark.unit


async def test_requests_past_the_in_flight_limit_are_shed_with_a_retry_after():
    limiter = InFlightLimiter(limit=2, retry_after_s=3)
    gate = asyncio.Event()
    admitted = 0

    async def request():
        nonlocal admitted
        async with limiter.slot():
            admitted += 1
            await gate.wait()

    tasks = [asyncio.create_task(request()) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as exc:
        async with limiter.slot():
            pass
    assert exc.value.status == 429 and exc.value.context["retry_after"] == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert admitted == 2 and limiter.in_flight == 0 and limiter.shed == 1
    async with limiter.slot():  # capacity is back once they finish
        assert limiter.in_flight == 1
