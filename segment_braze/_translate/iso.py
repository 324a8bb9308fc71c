"""ISO code look-ups (countries, languages, currencies) against pycountry's tables.

Braze sets a country that is not ISO-3166-1 alpha-2 to NULL, wants ISO-639-1
languages and ISO-4217 currencies, so every such value is checked against the
maintained ISO data in pycountry rather than tables typed in here. Results are
memoised: the look-ups are pure functions of their argument.
"""

from __future__ import annotations

import functools

import pycountry

__all__ = ["country_code", "currency_code", "language_code"]

# ISO 3166 reserves "UK" exceptionally for the United Kingdom (whose code is GB);
# pycountry lists only assigned codes, and "UK" is what people type.
_EXCEPTIONALLY_RESERVED = {"UK": "GB"}


@functools.lru_cache(maxsize=4096)
def country_code(value: str) -> str | None:
    """Return the ISO-3166-1 alpha-2 code for a code or an unambiguous country name.

    ``"de"`` -> ``"DE"``, ``"DEU"`` -> ``"DE"``, ``"Germany"`` -> ``"DE"``,
    ``"Russia"`` -> ``"RU"``; ``"Korea"`` (two countries) -> ``None``.
    """
    text = value.strip()
    if not text:
        return None
    upper = text.upper()
    if upper in _EXCEPTIONALLY_RESERVED:
        return _EXCEPTIONALLY_RESERVED[upper]
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        pass
    try:
        candidates = pycountry.countries.search_fuzzy(text)
    except LookupError:
        return None
    # Accept a fuzzy match only when exactly one country's own name contains the
    # text ("Russia" in "Russian Federation"); fuzzy search also matches
    # subdivisions ("Bavaria" -> Germany), which is not a country name.
    lowered = text.lower()
    named = [
        country
        for country in candidates
        if any(
            lowered in str(getattr(country, field, "")).lower()
            for field in ("name", "common_name", "official_name")
        )
    ]
    return str(named[0].alpha_2) if len(named) == 1 else None


@functools.lru_cache(maxsize=1024)
def language_code(value: str) -> str | None:
    """Return the ISO-639-1 code for ``value`` (a two-letter code), or ``None``."""
    code = value.strip().lower()
    if len(code) != 2 or pycountry.languages.get(alpha_2=code) is None:
        return None
    return code


@functools.lru_cache(maxsize=1024)
def currency_code(value: str) -> str | None:
    """Return the ISO-4217 code for ``value`` (three letters, any case), or ``None``."""
    code = value.strip().upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        return None
    return code
