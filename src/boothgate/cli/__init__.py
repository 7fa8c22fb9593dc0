"""The command line: `boothgate serve|rehearse|…`, and the booth simulator.

May import everything in boothgate.
"""
