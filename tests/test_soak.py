"""Soak: 50,000 messages through about 10% injected faults of every kind.

Nothing may go missing: every message ends delivered, failed or dropped exactly
once, and the stand-in holds a message's objects more than once only where an
injected timeout-after-receipt made the client resend a request Braze had kept.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from segment_braze import (
    BrazeClient,
    Identifier,
    Purchase,
    Settings,
    Translation,
)
from segment_braze.testing import BrazeStandIn, RecordedRequest

KEY = "test-key"
TIME = "2024-05-01T12:00:00Z"
BRAZE_TIME = "2024-05-01T12:00:00.000Z"
TOTAL = 50_000


def message(n: int) -> tuple[Any, int]:
    """Message ``m<n>`` of a mixed stream, and how many Braze objects or entries it makes."""
    mid, user = f"m{n}", f"u{n % 997}"
    kind = n % 10
    if kind in (3, 7):
        return {"type": "identify", "userId": user, "messageId": mid, "traits": {"mid": mid}}, 1
    if kind == 5:
        purchases = tuple(
            Purchase(
                identifier=Identifier(kind="external_id", value=user),
                product_id=f"sku-{i}",
                currency="USD",
                price=2,
                quantity=1,
                time=BRAZE_TIME,
                properties={"mid": mid},
            )
            for i in range(2)
        )
        return Translation(message_id=mid, purchases=purchases), 2
    if n % 500 == 9:
        # Few deletions: waiting entries go out with each /users/track batch, so
        # nearly every deletion costs a request of its own (and its share of the
        # injected 429 pauses). Deleting a user of its own keeps one ledger entry
        # per message.
        return {"type": "delete", "userId": f"gone-{mid}", "messageId": mid}, 1
    track = {
        "type": "track",
        "userId": user,
        "event": "Viewed",
        "timestamp": TIME,
        "messageId": mid,
        "properties": {"mid": mid},
    }
    return track, 1


def tags(request: RecordedRequest) -> Counter[str]:
    """How many objects or entries of each message a recorded request carried."""
    body = request.body if isinstance(request.body, dict) else {}
    found: Counter[str] = Counter()
    for array in ("attributes", "events", "purchases"):
        for obj in body.get(array, []):
            found[obj.get("mid") or obj.get("properties", {}).get("mid")] += 1
    for entry in body.get("external_ids", []):
        found[entry.removeprefix("gone-")] += 1
    return found


class TestSoak:
    """Mixed faults never lose a message or duplicate one without cause."""

    @pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes"])
    def test_fifty_thousand_messages_with_faults(self, processes):
        """50,000 messages, ~10% faults: all accounted, duplicates only from timeouts."""
        inputs, expected = [], {}
        for n in range(TOTAL):
            item, count = message(n)
            inputs.append(item)
            expected[f"m{n}"] = count
        lock = threading.Lock()
        fates: dict[str, list[str]] = {}

        def on_outcome(item: Any, outcome: str, reason: str | None) -> None:
            mid = item.message_id if isinstance(item, Translation) else item["messageId"]
            with lock:
                fates.setdefault(mid, []).append(outcome)

        # The injected post-receipt delay (2 s) is well past the read timeout (1 s),
        # which is itself well past a loaded machine's stalls: only the injected
        # timeouts may cause re-sends, as the last assertions require.
        with BrazeStandIn(
            api_key=KEY, random_faults=0.1, seed=20240501, post_receipt_delay=2.0
        ) as braze:
            settings = Settings(
                rest_api_key=KEY, rest_endpoint=braze.url, allow_custom_endpoint=True
            )
            with BrazeClient(
                settings,
                read_timeout=1.0,
                # Four workers against the in-process stand-in: with many more,
                # it answers slower under the GIL, and genuine (uninjected)
                # timeouts would resend what Braze kept.
                workers=4,
                backoff_initial=0.001,
                backoff_max=0.01,
                seed=11,
                on_outcome=on_outcome,
                # With two, the children hand back bundles, taken apart again
                # where the stand-in names one object (partial errors, 413).
                processes=processes,
            ) as client:
                report = client.send(inputs)
            requests = braze.requests
            kept: Counter[str] = Counter()
            for obj in (*braze.accepted_attributes, *braze.accepted_events):
                kept[obj.get("mid") or obj["properties"]["mid"]] += 1
            for obj in braze.accepted_purchases:
                kept[obj["properties"]["mid"]] += 1
            for entry in braze.accepted_entries("/users/delete"):
                kept[entry.removeprefix("gone-")] += 1

        # The faults really happened, of every kind.
        faults = Counter(r.fault.kind for r in requests if r.fault is not None)
        assert set(faults) == {
            "status",
            "rate_limited",
            "disconnect",
            "timeout_after_receipt",
            "partial_errors",
        }
        assert sum(faults.values()) >= 0.05 * len(requests)

        # Exact accounting: each message once in the report and once in on_outcome.
        assert report.total == TOTAL
        assert report.dropped == ()
        assert report.delivered + len(report.failed) == TOTAL
        assert all(len(outcome) == 1 for outcome in fates.values())
        assert set(fates) == set(expected)
        failed = {f.message_id: f for f in report.failed}
        assert len(failed) == len(report.failed)
        assert {mid for mid, [fate] in fates.items() if fate == "failed"} == set(failed)
        assert report.requests == len(requests)

        # Braze holds nothing it was not sent, and resends only after timeouts.
        assert set(kept) <= set(expected)
        resent: Counter[str] = Counter()
        for request in requests:
            if request.fault is not None and request.fault.kind == "timeout_after_receipt":
                for mid in tags(request):
                    resent[mid] += 1
        for mid, count in expected.items():
            allowed = count * (1 + resent[mid])
            assert kept[mid] <= allowed, (mid, kept[mid], resent[mid])
            if mid not in failed:
                assert kept[mid] >= count, mid
        duplicates = sum(max(0, kept[mid] - count) for mid, count in expected.items())
        assert duplicates <= sum(
            sum(tags(r).values())
            for r in requests
            if r.fault and r.fault.kind == "timeout_after_receipt"
        )

        # Failures are Braze refusing one object (a partial error), with its status.
        partial = {
            mid
            for r in requests
            if r.fault is not None and r.fault.kind == "partial_errors"
            for mid in tags(r)
        }
        for mid, failure in failed.items():
            assert mid in partial, failure
            assert failure.status == 201
            assert "Braze rejected" in failure.reason
