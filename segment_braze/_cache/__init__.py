"""The attribute cache: remembers what Braze acknowledged, so unchanged attributes are not re-sent.

Holds the cache (``cache``), the interface to its stores (``store``) and the
stores themselves (``stores``: memory, SQLite, Redis).

May import the top level and ``_translate`` (translations, data-point rules);
never ``_deliver``, ``_replay`` or ``testing``.
"""
