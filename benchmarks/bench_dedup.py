"""Data points the AttributeCache saves on a realistic identify-heavy stream.

Generates a deterministic stream in which each user is re-identified many times
(activity skewed: a few users identify far more often than most), almost always
with the same traits, sometimes spelled differently by another source (a birthday
as "1990-05-17" from the web and "May 17, 1990" from mobile), and now and then with
a real change (a plan upgrade, a move, a new tag, a bigger company, a higher
lifetime value). The stream goes through ``BrazeClient`` to a local
``BrazeStandIn`` twice: without a cache and with ``AttributeCache.memory()``. Data
points are estimated from the attributes objects the stand-in accepted, with the
library's own estimator (every attribute key billed, each key of a nested object
counted, identifiers and subscription states free).

Usage::

    python benchmarks/bench_dedup.py [--users 2000] [--identifies 20000] [--seed 1]
        [--chunk 0] [--json OUT]

``--chunk N`` sends the stream in ``send()`` calls of N messages (a consumer
delivering micro-batches); 0 (the default) sends it in one call.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segment_braze import AttributeCache, BrazeClient, DeliveryReport, Settings, translate
from segment_braze._translate.datapoints import attribute_data_points
from segment_braze.testing import BrazeStandIn

_START = dt.datetime(2024, 3, 1, 8, 0, 0, tzinfo=dt.UTC)
# One identify in ten changes something real: the rest repeat the profile.
_CHANGE_RATE = 0.10
# One identify in four comes from a source that spells the birthday in words.
_OTHER_SPELLING_RATE = 0.25
_FIRST = ["Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farah", "Giulia", "Hiroshi", "Ines"]
_LAST = ["Andersen", "Castillo", "Dubois", "Fischer", "García", "Huang", "Moreau", "Tanaka"]
_CITIES = [("Berlin", "DE"), ("Paris", "FR"), ("New York", "US"), ("Tokyo", "JP"), ("Madrid", "ES")]
_PLANS = ["free", "starter", "pro", "enterprise"]
_TAGS = ["beta", "newsletter", "vip", "mobile", "trial", "referrer"]
_INDUSTRIES = ["retail", "media", "software", "finance", "health"]


def _profile(rng: random.Random, index: int) -> dict[str, Any]:
    """One user's traits as their sources send them on every identify."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city, country = rng.choice(_CITIES)
    born = dt.date(1960, 1, 1) + dt.timedelta(days=rng.randrange(15_000))
    return {
        "firstName": first,
        "lastName": last,
        "email": f"{first.lower()}.{index}@example.com",
        "phone": f"+4930{rng.randrange(10**7, 10**8)}",
        "birthday": born.isoformat(),
        "gender": rng.choice(["female", "male", "other"]),
        "address": {"city": city, "country": country},
        "email_subscribe": "subscribed",
        "plan": rng.choice(_PLANS),
        "company": {
            "name": f"Company {rng.randrange(500)}",
            "size": rng.choice([5, 20, 100, 1000]),
            "industry": rng.choice(_INDUSTRIES),
        },
        "tags": sorted(rng.sample(_TAGS, 2)),
        "lifetime_value": round(rng.uniform(0, 500), 2),
        "created_at": f"{_START.date() - dt.timedelta(days=rng.randrange(900))}T10:00:00Z",
    }


def _change(rng: random.Random, traits: dict[str, Any]) -> None:
    """Change one trait the way a real profile changes."""
    kind = rng.randrange(5)
    if kind == 0:
        traits["plan"] = rng.choice([p for p in _PLANS if p != traits["plan"]])
    elif kind == 1:
        city, country = rng.choice(_CITIES)
        traits["address"] = {"city": city, "country": country}
    elif kind == 2:
        traits["tags"] = sorted({*traits["tags"], rng.choice(_TAGS)})
    elif kind == 3:
        traits["company"] = {**traits["company"], "size": traits["company"]["size"] * 2}
    else:
        traits["lifetime_value"] = round(traits["lifetime_value"] + rng.uniform(5, 100), 2)


def _in_words(iso_date: str) -> str:
    day = dt.date.fromisoformat(iso_date)
    return f"{day:%B} {day.day}, {day.year}"


def generate(users: int, identifies: int, seed: int) -> Iterator[dict[str, Any]]:
    """Yield the identify stream: the same arguments always give the same messages."""
    rng = random.Random(seed)
    profiles = [_profile(rng, index) for index in range(users)]
    # Zipf-like activity: user k identifies about 1/(k+1)^0.8 as often as user 0.
    cumulative = list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(users)))
    for number in range(identifies):
        # Every user appears at least once: the first pass is in user order.
        if number < users:
            index = number
        else:
            index = bisect.bisect(cumulative, rng.random() * cumulative[-1])
        traits = profiles[index]
        if number >= users and rng.random() < _CHANGE_RATE:
            _change(rng, traits)
        sent = json.loads(json.dumps(traits))
        if rng.random() < _OTHER_SPELLING_RATE:
            sent["birthday"] = _in_words(traits["birthday"])
        yield {
            "type": "identify",
            "messageId": f"m-{number}",
            "userId": f"user-{index}",
            "traits": sent,
            "timestamp": (_START + dt.timedelta(seconds=number)).isoformat(),
        }


def _chunks(messages: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    if size <= 0:
        yield messages
        return
    for start in range(0, len(messages), size):
        yield messages[start : start + size]


def run(messages: list[dict[str, Any]], *, cache: bool, chunk: int) -> dict[str, Any]:
    """Send ``messages`` to a fresh stand-in and measure what Braze received."""
    totals = DeliveryReport()
    started = time.perf_counter()
    with BrazeStandIn() as braze:
        settings = Settings(
            rest_api_key="test-key", rest_endpoint=braze.url, allow_custom_endpoint=True
        )
        attribute_cache = AttributeCache.memory() if cache else None
        with BrazeClient(settings, attribute_cache=attribute_cache, linger=0.05) as client:
            for part in _chunks(messages, chunk):
                report = client.send(part)
                totals = DeliveryReport(
                    delivered=totals.delivered + report.delivered,
                    failed=totals.failed + report.failed,
                    requests=totals.requests + report.requests,
                    attributes_sent=totals.attributes_sent + report.attributes_sent,
                    attributes_saved=totals.attributes_saved + report.attributes_saved,
                    data_points_saved=totals.data_points_saved + report.data_points_saved,
                )
        if attribute_cache is not None:
            attribute_cache.close()
        accepted = braze.accepted_attributes
        profiles = braze.profiles
    return {
        "profiles": profiles,
        "delivered": totals.delivered,
        "failed": len(totals.failed),
        "requests": totals.requests,
        "attributes_objects": len(accepted),
        "attributes_sent": totals.attributes_sent,
        "attributes_saved": totals.attributes_saved,
        "data_points": sum(attribute_data_points(obj) for obj in accepted),
        "data_points_saved_reported": totals.data_points_saved,
        "seconds": round(time.perf_counter() - started, 2),
    }


def sequential_data_points(messages: list[dict[str, Any]]) -> int:
    """Data points if Braze acknowledged each identify before the next was compared.

    The floor for this stream: the sender compares a message with what Braze has
    acknowledged so far, so repeats sent while an earlier one is still in flight
    go out in full.
    """
    total = 0
    with AttributeCache.memory() as cache:
        for message in messages:
            kept = cache.apply(translate(message))
            total += sum(attribute_data_points(obj.to_json()) for obj in kept.attributes)
            cache.acknowledge_translation(kept)
    return total


def measure(users: int, identifies: int, seed: int, chunk: int) -> dict[str, Any]:
    """Both runs on the same stream, and what the cache saved."""
    messages = list(generate(users, identifies, seed))
    without = run(messages, cache=False, chunk=chunk)
    with_cache = run(messages, cache=True, chunk=chunk)
    saved = without["data_points"] - with_cache["data_points"]
    # The cache must not change what Braze ends up with: compare every profile.
    expected, actual = without.pop("profiles"), with_cache.pop("profiles")
    differing = sorted(
        f"{key[1]}.{name}"
        for key in expected.keys() | actual.keys()
        for name in expected.get(key, {}).keys() | actual.get(key, {}).keys()
        if expected.get(key, {}).get(name) != actual.get(key, {}).get(name)
    )
    return {
        "users": users,
        "identifies": identifies,
        "seed": seed,
        "chunk": chunk,
        "without_cache": without,
        "with_cache": with_cache,
        "data_points_saved": saved,
        "percent_saved": round(100 * saved / without["data_points"], 1),
        "sequential_data_points": sequential_data_points(messages),
        "profiles_differing": differing,
    }


def render(result: dict[str, Any]) -> str:
    """The result as a small text table."""
    without, with_cache = result["without_cache"], result["with_cache"]
    rows = [
        ("requests", "requests"),
        ("attributes objects accepted", "attributes_objects"),
        ("attributes sent", "attributes_sent"),
        ("attributes saved", "attributes_saved"),
        ("estimated data points", "data_points"),
        ("data points saved (report)", "data_points_saved_reported"),
        ("seconds", "seconds"),
    ]
    chunk = result["chunk"] or "one send() call"
    lines = [
        f"{result['identifies']} identifies of {result['users']} users, seed {result['seed']}, "
        f"chunk {chunk}",
        f"{'':32}{'no cache':>12}{'memory cache':>14}",
    ]
    lines += [f"{label:32}{without[key]:>12}{with_cache[key]:>14}" for label, key in rows]
    lines.append(
        f"data points saved: {result['data_points_saved']} of {without['data_points']} "
        f"({result['percent_saved']}%)"
    )
    lines.append(
        f"floor (each identify acknowledged before the next): "
        f"{result['sequential_data_points']} data points"
    )
    differing = result["profiles_differing"]
    lines.append(
        "Braze profiles: identical with and without the cache"
        if not differing
        else f"Braze profiles DIFFER in {len(differing)} attributes, e.g. {differing[:5]}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--identifies", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=0, help="messages per send() (0: one call)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    if args.users < 1 or args.identifies < args.users:
        parser.error("need --users >= 1 and --identifies >= --users")
    result = measure(args.users, args.identifies, args.seed, args.chunk)
    print(render(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
