"""The pure room: from a Segment dict to Braze objects and request bodies.

Holds the Segment side (``segment``: parsing calls), who a message is about
(``identity``), the value rules (``values``, ``dates``, ``iso``), the trait and
product mappings (``traits``, ``products``, ``profile``), the Braze side
(``braze``: objects and their JSON), the result (``translation``), the dispatch
table (``calls``: ``translate()``) and the data-point estimate (``datapoints``).

No I/O, no threads, no clock, no global state. May import only the top level
(``segment_braze.exceptions``, ``segment_braze._settings``,
``segment_braze._json``); never ``_deliver``, ``_cache``, ``_replay`` or ``testing``.
"""
