"""cotrain's benchmark suite: the cost of decentralization, gas, scale, storage and accuracy.

Run it with ``make bench`` (``make bench-quick`` for the reduced versions) or ``python -m bench.run``; see
BENCHMARKS.md for the results and what each section measures.
"""
