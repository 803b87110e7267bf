"""organik_async's benchmark suite, over real TCP against the simulator.

Run it all with ``python -m benchmarks`` (or ``nox -s bench``), or one part with
``python -m benchmarks PART``; see ``benchmarks/__main__.py`` for the parts and
options. Each part writes ``benchmarks/results/<part>.json``, and
``python -m benchmarks.report`` makes the tables (``benchmarks/results/<part>.md``)
that ``docs/performance.md`` shows; ``benchmarks/PROFILE.md`` reasons from them
about where the client's CPU goes. Needs the ``bench`` extra
(``pip install -e '.[test,bench]'``).
"""
