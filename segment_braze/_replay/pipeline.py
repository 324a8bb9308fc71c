"""Send or estimate a feed: the last step of the send and replay commands."""

from __future__ import annotations

import itertools
from typing import Final

from segment_braze._deliver.client import BrazeClient
from segment_braze._deliver.report import DeliveryReport
from segment_braze._replay.feed import Feed
from segment_braze._replay.tally import Tally
from segment_braze.exceptions import AuthenticationError

__all__ = ["dry_run", "send"]

# Messages per BrazeClient.send call: each call's report lists its failures, so
# a long replay is sent in slices to keep memory flat. Order is kept: a slice
# is delivered before the next one starts.
_SLICE: Final = 20_000


def send(feed: Feed, client: BrazeClient, tally: Tally) -> None:
    """Send every translation of ``feed`` with ``client``, slice by slice.

    Raises:
        AuthenticationError: Braze refused the key; the rest of the input is unread.
    """
    translations = feed.translations()
    try:
        while (head := next(translations, None)) is not None:
            batch = itertools.chain((head,), itertools.islice(translations, _SLICE - 1))
            try:
                report = client.send(batch)
            except AuthenticationError as err:
                if isinstance(err.report, DeliveryReport):
                    tally.absorb(err.report)
                raise
            tally.absorb(report)
    finally:
        translations.close()


def dry_run(feed: Feed) -> None:
    """Translate and account for every message as if Braze had accepted it."""
    feed.dry_run()
