"""The benchmark harness of ``make bench``: snapkeep measured beside restic and borg on the same data.

Modules: ``measure`` (run one command, wall/CPU/peak RSS), ``dataset`` (generate, copy, mutate, digest the
data set), ``tools`` (the command lines of each tool), ``report`` (tables, ratios, REPORT.md, JSON),
``profiling`` (where snapkeep's time goes), ``run`` (the command line that ties them together).
"""
