"""Onefold: an open-source Customer Data Platform.

Start it with ``onefold serve --data ./onefold-data``, send Segment-format events to ``/v1/batch``, and read
them back with ``GET /api/events``. See the README for the quickstart.
"""

__version__ = "0.1.0"
