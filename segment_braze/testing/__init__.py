"""Test code that talks to Braze against a local stand-in for Braze's REST API.

:class:`BrazeStandIn` is a real HTTP server on 127.0.0.1 that answers like
Braze's user-data endpoints (``/users/track``, ``/users/identify``,
``/users/merge``, ``/users/delete``, ``/users/alias/new``). It checks the key, the
content type, the size and object limits and every object the way Braze does,
keeps a ledger of what Braze would have processed, and injects the failures a
sender must survive (:class:`Fault`)::

    with BrazeStandIn(api_key="test-key") as braze:
        requests.post(
            f"{braze.url}/users/track",
            json={"events": [{"external_id": "u1", "name": "Signed Up",
                              "time": "2024-05-01T12:00:00Z"}]},
            headers={"Authorization": "Bearer test-key"},
            timeout=5,
        )
        assert braze.accepted_events[0]["name"] == "Signed Up"

The stand-in judges with its own rules and never imports the rest of
segment_braze, so it stays an independent judge of what Braze accepts.

The room holds the public names above and its private modules: ``standin`` (the
server's behaviour), ``server`` (HTTP on loopback), ``rules``, ``processing`` and
``directory`` (Braze's object rules, what Braze stores, and who exists),
``ecommerce`` (Braze's recommended-event schema), ``faults`` and ``records``. It
may import only itself and ``segment_braze.exceptions``; never ``_translate``,
``_deliver``, ``_cache`` or ``_replay``.
"""

from segment_braze.testing.faults import Fault
from segment_braze.testing.records import IgnoredObject, RecordedRequest
from segment_braze.testing.standin import BrazeStandIn

__all__ = ["BrazeStandIn", "Fault", "IgnoredObject", "RecordedRequest"]
