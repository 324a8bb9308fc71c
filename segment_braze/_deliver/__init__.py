"""The sender: from translations to HTTP requests to Braze, accounting for every message.

Holds the client (``client``: ``BrazeClient``), one ``send`` call at work
(``delivery``: the reading loop and worker threads; ``runconfig``: what it is
given), translation in child processes (``pool``, its input ``intake``, and
``bundles``: a child's messages packed by shard), batching (``batching``),
Braze's answer traced back to messages (``answers``), Braze's retry rules
(``transport``), one HTTP exchange with its deadline and cap (``exchange``),
rate limiting (``ratelimit``) and the report (``report``).

May import the top level, ``_translate`` and ``_cache``; never ``_replay`` or
``testing``. Layers above meet it through explicit hooks (``on_outcome``,
``on_failure``, ``before_request``).
"""
