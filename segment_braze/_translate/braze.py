"""The Braze side: user identifiers, attributes, events, purchases and requests.

These are plain values. Each has one ``to_json()`` that writes Braze's wire form
(a JSON-ready dict), leaving out what is unset. Nothing here knows about Segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "TRACK_PATH",
    "BrazeRequest",
    "Event",
    "Identifier",
    "Purchase",
    "UserAttributes",
    "UserOperation",
]

TRACK_PATH = "/users/track"

IdentifierKind = Literal["external_id", "braze_id", "user_alias", "email", "phone"]


@attrs.frozen(kw_only=True)
class Identifier:
    """The one identifier of a Braze object.

    Braze rejects an object with two primary identifiers (``external_id``,
    ``braze_id``, ``user_alias``), so each object holds exactly one of these; or,
    without any, ``email`` or ``phone``, which Braze uses to look the profile up.

    Attributes:
        kind: ``external_id``, ``braze_id``, ``user_alias``, ``email`` or ``phone``.
        value: the id, the alias name for ``user_alias``, the lower-case email
            address, or the E.164 phone number.
        label: the alias label (``user_alias`` only).
    """

    kind: IdentifierKind
    value: str
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the identifier as the key/value pair Braze expects."""
        if self.kind == "user_alias":
            return {"user_alias": {"alias_name": self.value, "alias_label": self.label}}
        return {self.kind: self.value}

    @property
    def is_alias(self) -> bool:
        """Whether this identifies an alias-only (anonymous) profile."""
        return self.kind == "user_alias"


@attrs.frozen(kw_only=True)
class UserAttributes:
    """A Braze user attributes object.

    Attributes:
        identifier: who the attributes belong to.
        attributes: attribute name -> JSON value (standard and custom).
        update_existing_only: Braze's ``_update_existing_only`` flag.
        merge_objects: Braze's ``_merge_objects`` flag (written only when true):
            deep-merge the nested object attributes instead of replacing them.
    """

    identifier: Identifier
    attributes: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    update_existing_only: bool = False
    merge_objects: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return Braze's JSON form of the object."""
        body = self.identifier.to_json()
        body.update(self.attributes)
        body["_update_existing_only"] = self.update_existing_only
        if self.merge_objects:
            body["_merge_objects"] = True
        return body


@attrs.frozen(kw_only=True)
class Event:
    """A Braze custom event.

    Attributes:
        identifier: who did it.
        name: the event name.
        time: ISO 8601 UTC time with milliseconds.
        app_id: the Braze app identifier, when configured.
        properties: event properties (omitted from JSON when empty).
        update_existing_only: Braze's ``_update_existing_only`` flag.
    """

    identifier: Identifier
    name: str
    time: str
    app_id: str | None = None
    properties: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    update_existing_only: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return Braze's JSON form of the object."""
        body = self.identifier.to_json()
        if self.app_id is not None:
            body["app_id"] = self.app_id
        body["name"] = self.name
        body["time"] = self.time
        if self.properties:
            body["properties"] = self.properties
        body["_update_existing_only"] = self.update_existing_only
        return body


@attrs.frozen(kw_only=True)
class Purchase:
    """A Braze purchase (one product line, quantity 1 to 100).

    Attributes:
        identifier: who bought it.
        product_id: at most 255 characters.
        currency: ISO 4217 code, upper case.
        price: price per unit in the currency's base unit.
        quantity: 1 to 100 (Braze counts quantity X as X purchases).
        time: ISO 8601 UTC time with milliseconds.
        app_id: the Braze app identifier, when configured.
        properties: purchase properties (omitted from JSON when empty).
        update_existing_only: Braze's ``_update_existing_only`` flag.
    """

    identifier: Identifier
    product_id: str
    currency: str
    price: float | int
    quantity: int
    time: str
    app_id: str | None = None
    properties: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    update_existing_only: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return Braze's JSON form of the object."""
        body = self.identifier.to_json()
        if self.app_id is not None:
            body["app_id"] = self.app_id
        body["product_id"] = self.product_id
        body["currency"] = self.currency
        body["price"] = self.price
        body["quantity"] = self.quantity
        body["time"] = self.time
        if self.properties:
            body["properties"] = self.properties
        body["_update_existing_only"] = self.update_existing_only
        return body


@attrs.frozen(kw_only=True)
class UserOperation:
    """One entry for a user-management endpoint (identify, merge, delete).

    Braze takes up to 50 entries per request on these endpoints, so the sender
    batches entries of the same ``path`` and ``key`` from many messages.

    Attributes:
        path: the endpoint, e.g. ``/users/identify``.
        key: the body's list key, e.g. ``aliases_to_identify``.
        entry: one JSON-ready list item.
        before_track: send it before the message's ``/users/track`` objects
            (an email-only profile merged before the email is written to the
            known user); by default it goes after them.
    """

    path: str
    key: str
    entry: Any = attrs.field(hash=False)
    before_track: bool = False


@attrs.frozen(kw_only=True)
class BrazeRequest:
    """A request to Braze's REST API: a path and a JSON-ready body.

    Attributes:
        path: the endpoint path, e.g. ``/users/track``.
        body: the JSON-ready request body.
    """

    path: str
    body: Mapping[str, Any] = attrs.field(hash=False)
