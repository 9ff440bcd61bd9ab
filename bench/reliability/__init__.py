"""``make reliability``: kill -9 trials, crafted and damaged repositories, full disks.

The figures go to docs/RELIABILITY.md.
"""
