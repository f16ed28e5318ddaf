"""The macro benchmark behind ``python benchmarks/run.py``, one module per job.

::

    plan        what one run measures (FULL, QUICK): sizes, latencies, processes, rounds
      │
      ▼
    throughput ─┐  each section starts its simulator(s), runs every variant alone in a fresh
    ratelimit  ─┼─ subprocess through the runner (``_variant.py``), and turns each variant's
    stream     ─┘  raw result into one row of figures; checks judges every batch on the way
      │
      ▼  rows (plain dicts, also printed as JSON)
    verdicts    every target the sections chosen are expected to meet, judged on the rows:
      │         met, NOT met, or NOT met (no measurement) when a row is missing or errored
      ▼
    report      the tables and the verdicts as aligned text or ready-to-paste Markdown

``runner`` owns the subprocesses and the seed's interpreter; ``run.py`` parses the command
line, wires the pieces and turns the verdicts into the exit status.
"""
