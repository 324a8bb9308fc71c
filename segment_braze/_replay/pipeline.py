"""Send or estimate a feed: the last step of the send and replay commands."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator
from typing import Final

from segment_braze._deliver.client import BrazeClient
from segment_braze._deliver.pool import Prepared
from segment_braze._deliver.report import DeliveryReport
from segment_braze._replay.feed import Feed
from segment_braze._replay.tally import Tally
from segment_braze._translate.translation import Translation
from segment_braze.exceptions import AuthenticationError, SenderError

__all__ = ["dry_run", "send"]

# Messages per BrazeClient.send call: each call's report lists its failures, so
# a long replay is sent in slices to keep memory flat. Order is kept: a slice
# is delivered before the next one starts.
_SLICE: Final = 20_000


def send(
    feed: Feed, client: BrazeClient, tally: Tally, *, check: Callable[[], None] = lambda: None
) -> None:
    """Send every translation of ``feed`` with ``client``, slice by slice.

    Args:
        feed: the translations.
        client: the sender.
        tally: where the reports' counts go.
        check: called before each translation is handed over; what it raises
            stops the run (the attribute cache's store failed).

    Raises:
        AuthenticationError: Braze refused the key; the rest of the input is unread.
        SenderError: the sender stopped (a bug; a failed attribute cache raises
            ``check``'s error instead).
    """
    translations = _checked(feed.translations(), check)
    try:
        while (head := next(translations, None)) is not None:
            batch = itertools.chain((head,), itertools.islice(translations, _SLICE - 1))
            try:
                report = client.send(batch)
            except (AuthenticationError, SenderError) as err:
                if isinstance(err.report, DeliveryReport):
                    tally.absorb(err.report)
                if isinstance(err, SenderError):
                    check()  # a failed attribute cache stopped it: that is the run's one line
                raise
            tally.absorb(report)
    finally:
        translations.close()


def _checked(
    translations: Generator[Translation | Prepared, None, None], check: Callable[[], None]
) -> Generator[Translation | Prepared, None, None]:
    try:
        for translation in translations:
            check()
            yield translation
    finally:
        translations.close()


def dry_run(feed: Feed) -> None:
    """Translate and account for every message as if Braze had accepted it."""
    feed.dry_run()
