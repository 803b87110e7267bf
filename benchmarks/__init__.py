"""organik_async's benchmark suite (issues 4 and 11), over real TCP against the simulator.

Run it all with ``python -m benchmarks`` (or ``nox -s bench``), or one part with
``python -m benchmarks PART`` (decode, e2e, overhead, simulator, fanout, memory);
see ``benchmarks/__main__.py`` for the options, ``benchmarks/RESULTS.md`` for the
last figures and ``benchmarks/PROFILE.md`` for where the client's time goes.
Needs the ``bench`` extra (``pip install -e '.[test,bench]'``).
"""
