"""The pure room: from a Segment dict to Braze objects and request bodies.

Holds the Segment side (``segment``: parsing calls), who a message is about
(``identity``; ``named``: the profile a sender names), the value rules
(``values``, ``dates``, ``iso``; ``native``: Python values read as JSON), the
trait, product and e-commerce mappings (``traits``, ``synonyms``,
``array_ops``, ``products``, ``profile``, ``ecommerce``), the Braze side
(``braze``: objects and their JSON; ``ecommerce_schema``: Braze's schema for its
recommended events), the result (``translation``), the dispatch table
(``calls``: ``translate()``) and the data-point estimate (``datapoints``).

No I/O, no threads, no clock, no global state. May import only the top level
(``segment_braze.exceptions``, ``segment_braze._settings``,
``segment_braze._json``); never ``_deliver``, ``_cache``, ``_replay`` or ``testing``.
"""
