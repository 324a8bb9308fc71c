"""The final summaries of the commands: counts first, one line each."""

from __future__ import annotations

from collections import Counter
from typing import Final

from segment_braze._replay.tally import Tally

__all__ = ["delivery_summary", "translate_summary"]

_WIDTH: Final = 12
_SHOWN_REASONS: Final = 10


def _row(count: int, label: str, *, indent: int = 0) -> str:
    return f"{count:>{_WIDTH},}  {'  ' * indent}{label}"


def _reasons(reasons: Counter[str]) -> list[str]:
    common = reasons.most_common(_SHOWN_REASONS)
    rows = [_row(count, reason, indent=1) for reason, count in common]
    others = sum(reasons.values()) - sum(count for _, count in common)
    if others:
        rows.append(_row(others, "for other reasons", indent=1))
    return rows


# Drop reasons of Segment's delivery rules (_translate/routing.py): the message
# never reached Braze in Segment either.
_ROUTING: Final = ("integrations object turns Braze off", "context.integrations turns Braze off")
_CONSENT: Final = "consent not given"


def _routing(tally: Tally) -> list[str]:
    turned_off = sum(n for reason, n in tally.dropped.items() if reason.startswith(_ROUTING))
    no_consent = sum(n for reason, n in tally.dropped.items() if reason.startswith(_CONSENT))
    rows = []
    if turned_off:
        rows.append(_row(turned_off, "turned off for Braze by the integrations object", indent=1))
    if no_consent:
        rows.append(_row(no_consent, "without consent (consent_categories)", indent=1))
    return rows


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def _objects(tally: Tally) -> str:
    return ", ".join(
        (
            _plural(tally["attribute objects"], "attributes object"),
            _plural(tally["events"], "event"),
            _plural(tally["purchases"], "purchase"),
            _plural(tally["operations"], "user operation"),
        )
    )


def _points(tally: Tally) -> int:
    return tally["attribute points"] + tally["event points"] + tally["purchases"]


def _free_events(tally: Tally) -> str:
    free = tally["events"] - tally["event points"]
    # Braze: eCommerce recommended events use no data points.
    return f" ({_plural(free, 'recommended event')} free)" if free else ""


def translate_summary(tally: Tally) -> list[str]:
    """The ``translate --summary`` lines."""
    translated = tally["read"] - tally["invalid"] - tally["dropped"]
    return [
        f"segment-braze translate: {_plural(tally['read'], 'message')}",
        _row(translated, "translated"),
        _row(tally["dropped"], "dropped"),
        *_routing(tally),
        *_reasons(tally.dropped),
        _row(tally["invalid"], "invalid input"),
        f"Braze objects: {_objects(tally)}",
        f"estimated data points: {_points(tally):,} ({tally['attribute points']:,} for"
        f" attributes, {tally['event points']:,} for events{_free_events(tally)},"
        f" {tally['purchases']:,} for purchases)",
        f"warnings: {tally['warnings']:,}",
    ]


def delivery_summary(
    tally: Tally,
    *,
    command: str,
    files: int,
    unread: int = 0,
    dedup_window: float | None = None,
    dry_run: bool = False,
    recorded: dict[str, int] | None = None,
    state: str | None = None,
) -> list[str]:
    """The final report of ``send`` and ``replay``."""
    sent = "would be sent (dry run)" if dry_run else "delivered"
    lines = [
        f"segment-braze {command}: {_plural(tally['read'], 'message')}"
        f" read from {_plural(files, 'input')}",
    ]
    if unread:
        lines.append(
            f"{_plural(unread, 'file')} skipped unread: Segment received them more than a day"
            " before --since"
        )
    lines += [
        _row(tally["delivered"], sent),
        _row(tally["failed"], "failed"),
        *_reasons(tally.failed),
        _row(tally["invalid"], "invalid input"),
        _row(tally["dropped"], "dropped"),
        *_routing(tally),
        *_reasons(tally.dropped),
    ]
    rule = "the same source, messageId and time"
    if dedup_window:
        rule = f"the same source and messageId within {dedup_window:g} hours"
    for name, label in (
        ("duplicate", f"duplicates skipped ({rule})"),
        ("done earlier", "skipped, delivered by an earlier run"),
        ("failed earlier", "skipped, failed in an earlier run (--retry-failed sends them)"),
        ("outside window", "outside --since/--until"),
    ):
        if tally[name]:
            lines.append(_row(tally[name], label))
    if not dry_run:
        retries = _plural(tally["retries"], "retry", "retries")
        lines.append(f"Braze requests: {tally['requests']:,} ({retries})")
    lines.append(f"Braze objects: {_objects(tally)}")
    points = f"estimated data points: {_points(tally):,}"
    if tally["attributes saved"]:
        points += (
            f", less {tally['points saved']:,} saved by the attribute cache"
            f" ({_plural(tally['attributes saved'], 'unchanged attribute')} not sent)"
        )
    lines.append(points)
    if recorded is not None and state is not None and not dry_run:
        lines.append(
            f"state: {state} records {recorded['delivered']:,} delivered and"
            f" {recorded['failed']:,} failed messages"
        )
    return lines
