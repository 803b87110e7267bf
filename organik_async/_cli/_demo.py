"""``organik-report demo``: the bulk job against the simulator, over real HTTP.

A generated dataset is served by [`serve()`][organik_async.testing.serve] on a
free port of 127.0.0.1, with a provider's latency and a few faults (a 503, a
"server busy" code, a dropped connection, a rate limit) that the client's
retries absorb. The job asks for every transaction ID and, to show that rows
stay unique across ID kinds, for the GSM track IDs of the first transactions
as well; then it runs exactly as ``fetch`` does.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import replace
from typing import Final

from organik_async.testing import Dataset, FakeOrganikAPI, Fault, serve

from ._inputs import InputSet
from ._job import EXIT_USAGE, Job, Ui, run_job

__all__ = ["DEMO_FAULTS", "run_demo"]

OVERLAPPING_GSM_TRACK_IDS: Final = 2_000
DEMO_FAULTS: Final = (
    Fault.latency((0.01, 0.05)),
    Fault.status(503, on_requests={3}),
    Fault.provider_error(94, on_requests={8}),
    Fault.disconnect(on_requests={13}),
    Fault.rate_limited(retry_after=0.5, on_requests={21}),
)


async def run_demo(job: Job, ui: Ui, *, rows: int, seed: int) -> int:
    """Serve ``rows`` generated rows and run ``job`` against them."""
    if importlib.util.find_spec("uvicorn") is None:
        ui.say("the demo serves the simulator with uvicorn: the cli extra, organik_async[cli]")
        return EXIT_USAGE
    dataset = Dataset.generate(rows, seed=seed)
    fake = FakeOrganikAPI(dataset, seed=seed, faults=DEMO_FAULTS)
    overlap = itertools.islice(dataset.gsm_track_ids(), OVERLAPPING_GSM_TRACK_IDS)
    inputs = InputSet.of({"transaction_ids": dataset.transaction_ids, "gsm_track_ids": overlap})
    ui.secret = fake.api_key
    async with serve(fake) as base_url:
        demo_job = replace(
            job,
            inputs=inputs,
            api_key=fake.api_key,
            client=replace(job.client, base_url=base_url),
        )
        return await run_job(demo_job, ui)
