"""A faithful, fast simulator of the Organik API's ``detailedreport`` request.

Test your code against it in-process (no sockets):

```python
from organik_async.testing import FakeOrganikAPI

fake = FakeOrganikAPI()  # 1,000 generated rows, the demo key
async with fake.client() as client:  # an OrganikClient wired to it
    ids = fake.dataset.transaction_ids[:3]
    rows = await client.detailed_report(transaction_ids=ids)
```

or over real TCP (needs ``organik_async[testing]``, i.e. uvicorn):

```python
async with serve(fake) as base_url:
    ...
```

or as a separate process: ``python -m organik_async.testing serve --port 8080``. Faults
([`Fault`][organik_async.testing.Fault]) are injected on demand; `FakeOrganikAPI.stats` records what
was served; with ``finalize_after`` and a [`ManualClock`][organik_async.testing.ManualClock],
pending rows become final when a test moves the clock.
"""

from __future__ import annotations

from ._app import FakeOrganikAPI
from ._clock import ManualClock
from ._data import Dataset
from ._faults import Fault, FaultKind
from ._keys import DEMO_API_KEY, redact_key
from ._server import serve
from ._stats import Outcome, Stats
from ._transport import FakeTransport

__all__ = [
    "DEMO_API_KEY",
    "Dataset",
    "FakeOrganikAPI",
    "FakeTransport",
    "Fault",
    "FaultKind",
    "ManualClock",
    "Outcome",
    "Stats",
    "redact_key",
    "serve",
]
