"""Turn Segment analytics calls into Braze REST API data, and deliver it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from segment_braze._cache.cache import AttributeCache, AttributeStore
from segment_braze._deliver.client import BrazeClient
from segment_braze._deliver.report import DeliveryReport, Failure
from segment_braze._settings import Settings
from segment_braze._translate.braze import (
    BrazeRequest,
    Event,
    Identifier,
    Purchase,
    UserAttributes,
    UserOperation,
)
from segment_braze._translate.calls import translate
from segment_braze._translate.translation import Translation
from segment_braze.exceptions import (
    AuthenticationError,
    DeliveryError,
    InvalidMessage,
    SegmentBrazeError,
    SenderError,
    SettingsError,
    TransportError,
)

try:
    __version__ = _version("segment-braze")
except _PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AttributeCache",
    "AttributeStore",
    "AuthenticationError",
    "BrazeClient",
    "BrazeRequest",
    "DeliveryError",
    "DeliveryReport",
    "Event",
    "Failure",
    "Identifier",
    "InvalidMessage",
    "Purchase",
    "SegmentBrazeError",
    "SenderError",
    "Settings",
    "SettingsError",
    "Translation",
    "TransportError",
    "UserAttributes",
    "UserOperation",
    "__version__",
    "translate",
]
