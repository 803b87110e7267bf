"""Benchmarks of organik_async over real TCP against the simulator (issue 4).

Run them all with ``python -m benchmarks`` (or ``nox -s bench``); see
``benchmarks/__main__.py`` for the options and ``benchmarks/RESULTS.md`` for
the last full run's figures.
"""
