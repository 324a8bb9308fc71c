"""Deterministic corpus of realistic, mixed Segment traffic for the benchmarks.

The same ``count`` and ``seed`` always give the same messages, byte for byte, so
numbers from different commits (and from the Node peer) are measured on the same
input. The mix follows what a typical web + mobile + server source sends:

    track (plain)          ~38%   properties of a few kinds, some nested
    page                   ~20%   named (with category) and unnamed
    identify               ~14%   standard traits plus nested and array custom traits
    screen                  ~9%
    Order Completed         ~6%   1 to 5 products, currency sometimes
    Product Viewed          ~4%
    group                   ~5%
    alias                   ~4%

About one message in seven (of identify, track, page and screen) is anonymous:
it carries an ``anonymousId`` and no ``userId``.

Usage::

    python benchmarks/corpus.py --count 100000 --seed 1 -o benchmarks/out/corpus.jsonl
    python benchmarks/corpus.py --count 100000 --seed 1 --gzip -o corpus.jsonl.gz

``generate(count, seed)`` yields the messages as dicts; ``dump_line(message)``
writes one as the compact JSON line the CLI writes; ``read_lines(path)`` reads a
corpus file back (plain or gzipped) as text lines; ``cached(count, seed, dir)``
writes a corpus file once and reuses it (the benchmarks keep theirs in
``benchmarks/out/``, which git ignores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["cached", "dump_line", "generate", "read_lines"]

_START = dt.datetime(2024, 3, 1, 8, 0, 0, tzinfo=dt.UTC)
_USERS = 20_000

_FIRST = [
    "Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farah", "Giulia", "Hiroshi", "Ines",
    "José", "Kwame", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa",
    "Sven", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoë",
]  # fmt: skip
_LAST = [
    "Andersen", "Björk", "Castillo", "Dubois", "Eriksen", "Fischer", "García", "Huang",
    "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "O'Brien",
    "Petrov", "Rossi", "Schmidt", "Tanaka", "Újvári", "Varga", "Wójcik", "Yilmaz",
]  # fmt: skip
_DOMAINS = ["example.com", "mail.example.org", "inbox.example.net", "corp.example.io"]
_CITIES = [
    ("Berlin", "DE", "10115"), ("Paris", "FR", "75001"), ("San Francisco", "US", "94107"),
    ("New York", "US", "10001"), ("London", "GB", "EC1A 1BB"), ("São Paulo", "BR", "01000-000"),
    ("Tokyo", "JP", "100-0001"), ("Toronto", "CA", "M5H 2N2"), ("Madrid", "ES", "28001"),
    ("Sydney", "AU", "2000"), ("Mumbai", "IN", "400001"), ("Warsaw", "PL", "00-001"),
]  # fmt: skip
_GENDERS = ["female", "male", "F", "M", "other", "non-binary"]
_PLANS = ["free", "starter", "pro", "enterprise"]
_TAGS = ["beta", "newsletter", "vip", "churn-risk", "mobile", "early-adopter", "referral"]
_TRACK_EVENTS = [
    "Button Clicked", "Signed Up", "Signed In", "Search Performed", "Video Played",
    "Article Read", "Cart Viewed", "Product Added", "Checkout Started", "Coupon Applied",
    "Subscription Started", "Notification Opened", "Feature Used", "Form Submitted",
]  # fmt: skip
_PAGES = [
    ("Home", None, "/"), ("Pricing", "Marketing", "/pricing"), ("Docs", "Help", "/docs"),
    ("Blog Post", "Content", "/blog/post"), ("Checkout", "Shop", "/checkout"),
    ("Product", "Shop", "/products/item"), ("Settings", "Account", "/account/settings"),
]  # fmt: skip
_SCREENS = ["Home", "Feed", "Profile", "Settings", "Product Detail", "Cart", "Onboarding"]
_CURRENCIES = ["USD", "EUR", "GBP", "usd", "JPY", "CAD"]
_PRODUCT_NAMES = ["Monopoly", "Uno", "Catan", "Go Board", "Chess Set", "Jigsaw", "Dice"]
_CATEGORIES = ["Games", "Toys", "Books", "Outdoor", "Electronics"]
_BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
]
_MOBILE_AGENTS = [
    "MyApp/5.2.1 (iPhone; iOS 17.3; Scale/3.00)",
    "MyApp/5.2.0 (Linux; Android 14; Pixel 8)",
]
_LOCALES = ["en-US", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP"]


class _Random(random.Random):
    """``random.Random`` with ``choice`` and ``randrange`` from one ``random()`` call.

    The stock ones draw bits in a loop to avoid a bias that does not matter here;
    these make generating a large corpus several times faster, just as deterministic.
    """

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.random() * len(seq))]

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        del step  # always 1 here
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))


class _Source:
    """One random stream; every choice the corpus makes goes through it."""

    def __init__(self, seed: int) -> None:
        self.rng = _Random(seed)
        self.clock = _START

    def uuid(self) -> str:
        # A version-4 UUID, formatted by hand (uuid.UUID is slow in bulk).
        digits = f"{self.rng.getrandbits(122):031x}"
        variant = "89ab"[int(digits[15], 16) & 3]
        return (
            f"{digits[:8]}-{digits[8:12]}-4{digits[12:15]}-{variant}{digits[16:19]}-{digits[19:31]}"
        )

    def tick(self) -> str:
        # Messages arrive a few tens of milliseconds apart, as from a busy source.
        self.clock += dt.timedelta(microseconds=self.rng.randrange(1_000, 80_000))
        return _iso(self.clock)

    def user_id(self) -> str:
        return f"user_{self.rng.randrange(_USERS):06d}"

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


def _iso(moment: dt.datetime) -> str:
    # analytics.js form: milliseconds and "Z".
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


def _ip(src: _Source) -> str:
    # Documentation ranges only (RFC 5737), so the corpus names no real host.
    prefix = src.rng.choice(["192.0.2", "198.51.100", "203.0.113"])
    return f"{prefix}.{src.rng.randrange(1, 255)}"


def _context(src: _Source, platform: str) -> dict[str, Any]:
    rng = src.rng
    if platform == "web":
        context: dict[str, Any] = {
            "library": {"name": "analytics.js", "version": "next-1.64.0"},
            "ip": _ip(src),
            "userAgent": rng.choice(_BROWSERS),
            "locale": rng.choice(_LOCALES),
        }
        page = rng.choice(_PAGES)
        context["page"] = {
            "path": page[2],
            "url": f"https://www.example.com{page[2]}",
            "title": f"{page[0]} | Example",
            "referrer": rng.choice(["", "https://www.example.org/", "https://search.example/"]),
        }
        if src.chance(0.2):
            context["campaign"] = {"name": "spring_sale", "source": "newsletter", "medium": "email"}
        return context
    if platform == "mobile":
        ios = src.chance(0.5)
        device: dict[str, Any] = {
            "id": src.uuid(),
            "manufacturer": "Apple" if ios else "Google",
            "model": "iPhone15,2" if ios else "Pixel 8",
            "type": "ios" if ios else "android",
        }
        if src.chance(0.5):
            device["token"] = f"{rng.getrandbits(256):064x}"
        return {
            "library": {
                "name": "analytics-swift" if ios else "analytics-kotlin",
                "version": "1.5.4",
            },
            "ip": _ip(src),
            "userAgent": _MOBILE_AGENTS[0 if ios else 1],
            "locale": rng.choice(_LOCALES),
            "device": device,
            "os": {"name": "iOS" if ios else "Android", "version": "17.3" if ios else "14"},
            "app": {"name": "MyApp", "version": "5.2.1", "build": "521"},
            "network": {"wifi": src.chance(0.6), "carrier": "Example Mobile"},
            "timezone": rng.choice(["Europe/Berlin", "America/New_York", "Asia/Tokyo"]),
        }
    return {
        "library": {"name": "analytics-node", "version": "2.1.0"},
        "ip": _ip(src),
        "userAgent": "analytics-node-next/latest",
    }


def _envelope(src: _Source, call_type: str, platform: str, *, anonymous: bool) -> dict[str, Any]:
    timestamp = src.tick()
    message: dict[str, Any] = {"type": call_type, "messageId": src.uuid()}
    if anonymous:
        message["anonymousId"] = src.uuid()
    else:
        message["userId"] = src.user_id()
        if platform != "server" and src.chance(0.5):
            message["anonymousId"] = src.uuid()
    message["timestamp"] = timestamp
    message["context"] = _context(src, platform)
    if platform != "server":
        message["originalTimestamp"] = timestamp
        message["sentAt"] = timestamp
    message["receivedAt"] = timestamp
    message["integrations"] = {}
    return message


def _traits(src: _Source) -> dict[str, Any]:
    rng = src.rng
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city, country, postal = rng.choice(_CITIES)
    traits: dict[str, Any] = {
        "firstName": first,
        "lastName": last,
        "email": f"{first.lower()}.{rng.randrange(10_000)}@{rng.choice(_DOMAINS)}",
    }
    if src.chance(0.7):
        traits["phone"] = f"+1555{rng.randrange(10**7):07d}"
    if src.chance(0.6):
        traits["gender"] = rng.choice(_GENDERS)
    if src.chance(0.6):
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20_000))
        traits["birthday"] = born.isoformat()
    if src.chance(0.7):
        traits["address"] = {"city": city, "country": country, "postalCode": postal}
        if src.chance(0.3):
            traits["address"]["street"] = f"{rng.randrange(1, 200)} Example Street"
    if src.chance(0.4):
        traits["avatar"] = f"https://cdn.example.com/avatars/{rng.getrandbits(64):016x}.png"
    # Custom traits: scalars, a date, arrays and nested objects.
    traits["plan"] = rng.choice(_PLANS)
    traits["logins"] = rng.randrange(1, 500)
    if src.chance(0.5):
        traits["lifetimeValue"] = round(rng.uniform(0, 5_000), 2)
    if src.chance(0.5):
        traits["createdAt"] = _iso(_START - dt.timedelta(days=rng.randrange(1, 2_000)))
    if src.chance(0.6):
        traits["tags"] = rng.sample(_TAGS, rng.randrange(1, 4))
    if src.chance(0.5):
        traits["preferences"] = {
            "newsletter": src.chance(0.5),
            "theme": rng.choice(["light", "dark", "system"]),
            "notifications": {"email": src.chance(0.7), "push": src.chance(0.4)},
        }
    if src.chance(0.3):
        traits["recentOrders"] = [
            {"orderId": f"ord_{rng.getrandbits(40):010x}", "total": round(rng.uniform(5, 300), 2)}
            for _ in range(rng.randrange(1, 4))
        ]
    if src.chance(0.2):
        traits["company"] = {"name": "Example GmbH", "employees": rng.randrange(1, 5_000)}
    return traits


def _identify(src: _Source, platform: str, *, anonymous: bool) -> dict[str, Any]:
    message = _envelope(src, "identify", platform, anonymous=anonymous)
    message["traits"] = _traits(src)
    return message


def _track_properties(src: _Source, event: str) -> dict[str, Any]:
    rng = src.rng
    properties: dict[str, Any] = {}
    if event == "Button Clicked":
        properties = {"label": rng.choice(["Buy now", "Learn more", "Sign up"]), "position": 2}
    elif event == "Search Performed":
        properties = {"query": rng.choice(["board games", "chess", "puzzle"]), "results": 42}
    elif event == "Video Played":
        properties = {
            "video_id": f"vid_{rng.randrange(10**6)}",
            "duration": rng.randrange(30, 900),
            "quality": rng.choice(["720p", "1080p"]),
        }
    elif event in {"Product Added", "Cart Viewed", "Checkout Started"}:
        properties = {
            "cart_id": f"cart_{rng.getrandbits(32):08x}",
            "value": round(rng.uniform(5, 400), 2),
            "items": rng.randrange(1, 6),
        }
    else:
        properties = {"source": rng.choice(["web", "email", "push"]), "step": rng.randrange(1, 5)}
    if src.chance(0.3):
        properties["experiment"] = {"id": "exp_42", "variant": rng.choice(["a", "b"])}
    if src.chance(0.2):
        properties["labels"] = rng.sample(_TAGS, 2)
    return properties


def _track(src: _Source, platform: str, *, anonymous: bool) -> dict[str, Any]:
    message = _envelope(src, "track", platform, anonymous=anonymous)
    event = src.rng.choice(_TRACK_EVENTS)
    message["event"] = event
    message["properties"] = _track_properties(src, event)
    return message


def _product(src: _Source, position: int) -> dict[str, Any]:
    rng = src.rng
    product: dict[str, Any] = {}
    if src.chance(0.8):
        product["product_id"] = f"prod_{rng.randrange(10_000):05d}"
    product["sku"] = f"SKU-{rng.randrange(100_000):05d}"
    product["name"] = rng.choice(_PRODUCT_NAMES)
    if src.chance(0.5):
        product["variant"] = rng.choice(["red", "blue", "large", "deluxe"])
    product["category"] = rng.choice(_CATEGORIES)
    product["price"] = round(rng.uniform(1, 250), 2)
    product["quantity"] = rng.randrange(1, 4)
    product["position"] = position
    if src.chance(0.3):
        product["url"] = f"https://www.example.com/products/{product['sku'].lower()}"
    return product


def _order_completed(src: _Source, platform: str, *, anonymous: bool) -> dict[str, Any]:
    rng = src.rng
    message = _envelope(src, "track", platform, anonymous=anonymous)
    message["event"] = "Order Completed"
    products = [_product(src, index + 1) for index in range(rng.randrange(1, 6))]
    subtotal = round(sum(p["price"] * p["quantity"] for p in products), 2)
    properties: dict[str, Any] = {
        "order_id": f"ord_{rng.getrandbits(40):010x}",
        "total": round(subtotal * 1.08, 2),
        "revenue": subtotal,
        "tax": round(subtotal * 0.08, 2),
        "shipping": rng.choice([0, 4.99, 9.99]),
    }
    if src.chance(0.6):
        properties["currency"] = rng.choice(_CURRENCIES)
    if src.chance(0.2):
        properties["coupon"] = "SPRING10"
        properties["discount"] = round(subtotal * 0.1, 2)
    properties["products"] = products
    message["properties"] = properties
    return message


def _product_viewed(src: _Source, platform: str, *, anonymous: bool) -> dict[str, Any]:
    message = _envelope(src, "track", platform, anonymous=anonymous)
    message["event"] = "Product Viewed"
    product = _product(src, 1)
    if src.chance(0.5):
        product["currency"] = src.rng.choice(_CURRENCIES)
    message["properties"] = product
    return message


def _page(src: _Source, platform: str, *, anonymous: bool) -> dict[str, Any]:
    del platform  # pages come from the browser
    message = _envelope(src, "page", "web", anonymous=anonymous)
    name, category, path = src.rng.choice(_PAGES)
    properties: dict[str, Any] = {
        "path": path,
        "url": f"https://www.example.com{path}",
        "title": f"{name} | Example",
        "referrer": "",
    }
    if src.chance(0.7):
        message["name"] = name
        if category is not None:
            message["category"] = category
    message["properties"] = properties
    return message


def _screen(src: _Source, platform: str, *, anonymous: bool) -> dict[str, Any]:
    del platform  # screens come from the apps
    message = _envelope(src, "screen", "mobile", anonymous=anonymous)
    message["name"] = src.rng.choice(_SCREENS)
    message["properties"] = {"from": src.rng.choice(_SCREENS), "session": src.rng.randrange(50)}
    return message


def _group(src: _Source, platform: str, *, anonymous: bool) -> dict[str, Any]:
    del anonymous  # a group call names a known user
    message = _envelope(src, "group", platform, anonymous=False)
    message["groupId"] = f"org_{src.rng.randrange(2_000):04d}"
    message["traits"] = {
        "name": "Example Inc.",
        "industry": src.rng.choice(["Retail", "Media", "Software"]),
        "employees": src.rng.randrange(1, 10_000),
        "plan": src.rng.choice(_PLANS),
    }
    return message


def _alias(src: _Source, platform: str, *, anonymous: bool) -> dict[str, Any]:
    del anonymous  # an alias links a previous id to a known user
    message = _envelope(src, "alias", platform, anonymous=False)
    message["previousId"] = src.uuid()
    return message


# (weight, builder, platforms it comes from, can be anonymous)
_MIX = [
    (38, _track, ("web", "mobile", "server"), True),
    (20, _page, ("web",), True),
    (14, _identify, ("web", "mobile", "server"), True),
    (9, _screen, ("mobile",), True),
    (6, _order_completed, ("web", "mobile", "server"), False),
    (4, _product_viewed, ("web", "mobile"), True),
    (5, _group, ("web", "server"), False),
    (4, _alias, ("web", "mobile"), False),
]
_WEIGHTS = [weight for weight, *_ in _MIX]
_ANONYMOUS_SHARE = 1 / 7


def generate(count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Yield ``count`` Segment messages, the same ones for the same ``seed``.

    Args:
        count: how many messages.
        seed: the seed of the one ``random.Random`` every choice comes from.

    Yields:
        Segment spec messages as Segment delivers them (camelCase keys).
    """
    src = _Source(seed)
    for _ in range(count):
        (_, build, platforms, can_be_anonymous) = src.rng.choices(_MIX, weights=_WEIGHTS)[0]
        platform = src.rng.choice(platforms)
        anonymous = can_be_anonymous and src.chance(_ANONYMOUS_SHARE)
        yield build(src, platform, anonymous=anonymous)


def dump_line(message: dict[str, Any]) -> str:
    """Return one message as a compact JSON line (no trailing newline)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def read_lines(path: str | Path) -> list[str]:
    """Read a corpus file (``.jsonl`` or gzipped) back as its non-empty lines."""
    path = Path(path)
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rt", encoding="utf-8") as stream:
        return [line.rstrip("\n") for line in stream if line.strip()]


def cached(count: int, seed: int, directory: str | Path) -> Path:
    """Return a plain JSONL file of ``generate(count, seed)`` in ``directory``.

    The file is written once and reused: its name carries the count, the seed and
    a digest of this module's source, so a change to the generator never serves a
    stale corpus. Older versions for the same count and seed are removed.
    """
    directory = Path(directory)
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    path = directory / f"corpus-{count}-{seed}-{digest}.jsonl"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f"corpus-{count}-{seed}-*.jsonl"):
        stale.unlink()
    partial = path.with_suffix(f".partial-{os.getpid()}")
    _write(count, seed, str(partial), gzipped=False)
    partial.replace(path)
    return path


def _write(count: int, seed: int, output: str, *, gzipped: bool) -> None:
    if output == "-":
        stream = sys.stdout
        for message in generate(count, seed):
            stream.write(dump_line(message) + "\n")
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gzipped:
        # mtime=0 keeps the gzip header, and so the file, the same for the same seed.
        with (
            path.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as packed,
        ):
            for message in generate(count, seed):
                packed.write((dump_line(message) + "\n").encode())
        return
    with path.open("w", encoding="utf-8") as stream:
        for message in generate(count, seed):
            stream.write(dump_line(message) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--count", type=int, default=100_000, help="messages (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--gzip", action="store_true", help="gzip the output")
    parser.add_argument("-o", "--output", default="-", help="output file, '-' for stdout")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    _write(args.count, args.seed, args.output, gzipped=args.gzip or args.output.endswith(".gz"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
