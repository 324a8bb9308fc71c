"""Translation in worker processes, for ``BrazeClient(processes=N)``.

One interpreter translates at most about 30,000 messages per second on one core
(well under Braze's ceiling of 75,000 objects per second), so with ``processes``
above 1 the client's reading thread hands Segment dicts, in chunks, to
``processes`` child processes that translate them and serialise their objects.
Each child sends back only what the sender needs, packed by worker shard
(``bundles``): runs of one shard's messages whose objects fit one request,
already serialised and joined, and on their own the messages that cannot join a
run (user-management entries, drops, oversized ones). Never a ``Translation``,
and no object is serialised twice. The parent keeps the caller's items by
position, takes the chunks back *in input order* (each shard's units in input
order within a chunk, so one user's order holds) and does all the rest: packing,
sending, accounting, hooks.

Messages may be given as JSON text (a ``str`` or ``bytes`` line): the children
then parse them too, and the parent passes on only the text, which pickles far
cheaper than a parsed dict.

The children are plain ``python -m segment_braze._deliver.pool`` processes (no
fork of a process that runs threads) talking length-prefixed pickles over their
standard input and output. They never see the REST API key: they get settings
without it, and an environment without ``BRAZE_REST_API_KEY`` or any variable
holding the key. A child that dies (killed, out of memory) or stops answering
within 60 seconds stops the send (see ``child``): every message not yet delivered is
reported failed, and ``send`` raises ``SenderError``.
"""

from __future__ import annotations

import collections
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, NamedTuple

import attrs

from segment_braze import _json
from segment_braze._deliver.batching import attribute_keys, user_key
from segment_braze._deliver.bundles import HERE, RUN, bundle_chunk
from segment_braze._deliver.child import (
    BROKEN,
    UNPICKLABLE,
    UNREAD,
    Child,
    read_value,
    write_value,
)
from segment_braze._deliver.intake import Intake
from segment_braze._settings import Settings
from segment_braze._translate.braze import UserOperation
from segment_braze._translate.calls import translate
from segment_braze._translate.translation import Translation
from segment_braze.exceptions import InvalidMessage, SenderError

__all__ = [
    "BROKEN",
    "UNPICKLABLE",
    "Prepared",
    "TranslationPool",
    "parsed",
    "prepare_message",
    "prepare_translation",
    "serve",
]

# Messages per chunk: pickling and the round trip cost little per message, and
# every child stays busy.
_CHUNK: Final = 256
# Chunks in flight per child: the memory bound of the pipeline.
_AHEAD: Final = 2
_POLL: Final = 0.5  # seconds between looks at a stopped run's input


class Prepared(NamedTuple):
    """What a child process hands back for one message (plain data, cheap to pickle).

    Attributes:
        message_id: the message's ``messageId``, when it has one.
        dropped: why nothing is sent (``"invalid message: ..."``, Braze's reason,
            or an unexpected error's type), or ``None``.
        failed: ``True`` when ``dropped`` is an unexpected error (a failure).
        user_key: the shard key (see ``batching.user_key``).
        objects: serialised ``/users/track`` objects per array name.
        operations: the user-management operations, in order.
        attribute_keys: attribute keys sent (for the report).
        attributes: the attributes objects as dicts, unserialised, when asked
            for (an attribute cache must see their values): ``objects`` then
            has no attributes, and the sender serialises the ones it keeps.
        cache_tokens: when the attribute cache is held by the worker process
            that translated the message (a replay's), one token per attributes
            object it left in ``objects``, for the sender to hand back with
            Braze's answer.
        cache_saved: attribute keys and data points that cache left out.
    """

    message_id: str | None = None
    dropped: str | None = None
    failed: bool = False
    user_key: str = ""
    objects: dict[str, list[bytes]] | None = None
    operations: tuple[UserOperation, ...] = ()
    attribute_keys: int = 0
    attributes: tuple[dict[str, Any], ...] = ()
    cache_tokens: tuple[int, ...] = ()
    cache_saved: tuple[int, int] = (0, 0)

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickled by tuple.__new__ (C) rather than the generated __new__: the
        # parent unpickles one of these per message.
        return tuple.__new__, (type(self), tuple(self))


# Items the parent prepares itself (already translated); a tuple, as isinstance
# takes it faster than a union.
_HERE: Final = (Translation, Prepared)


def parsed(message: Any) -> Any:
    """A Segment message given as JSON text (``str`` or ``bytes``), parsed.

    Raises:
        InvalidMessage: the text is not JSON, or not a JSON object.
    """
    if not isinstance(message, str | bytes):
        return message
    try:
        value = _json.loads(message)
    except (ValueError, RecursionError) as err:
        raise InvalidMessage("$", f"not JSON ({type(err).__name__})") from err
    if not isinstance(value, dict):
        raise InvalidMessage("$", "not a JSON object")
    return value


def prepare_message(message: Any, settings: Settings) -> Prepared:
    """Parse (if text), translate and serialise one Segment message (what a child does)."""
    try:
        return prepare_translation(translate(parsed(message), settings))
    except InvalidMessage as err:
        return Prepared(dropped=f"invalid message: {err}")
    except Exception as err:  # noqa: BLE001 (one bad message costs only itself)
        reason = f"unexpected error preparing it ({type(err).__name__})"
        return Prepared(dropped=reason, failed=True)


def prepare_translation(translation: Translation, *, attribute_values: bool = False) -> Prepared:
    """What the sender needs of a translation: its objects serialised, its shard key.

    Args:
        translation: a translated message.
        attribute_values: hand the attributes objects over as dicts, unserialised
            (``Prepared.attributes``), for a sender with an attribute cache.
    """
    message_id = translation.message_id
    if translation.dropped is not None:
        return Prepared(message_id=message_id, dropped=translation.dropped)
    if not translation.object_count and not translation.operations:
        return Prepared(message_id=message_id, dropped="the translation holds nothing to send")
    dumps = _json.dumps
    attributes = [obj.to_json() for obj in translation.attributes]
    return Prepared(
        message_id=message_id,
        user_key=user_key(translation),
        objects={
            "attributes": [] if attribute_values else [dumps(obj) for obj in attributes],
            "events": [dumps(obj.to_json()) for obj in translation.events],
            "purchases": [dumps(obj.to_json()) for obj in translation.purchases],
        },
        operations=translation.operations,
        attribute_keys=0 if attribute_values else attribute_keys(attributes),
        attributes=tuple(attributes) if attribute_values else (),
    )


class TranslationPool:
    """Children that translate for one ``send``; a context manager.

    Args:
        settings: the client's settings (the children get them without the key).
        processes: how many children.
        workers: the sender's worker threads (the children bundle by shard).
    """

    def __init__(self, settings: Settings, processes: int, workers: int) -> None:
        secret = settings.rest_api_key or ""
        keyless = attrs.evolve(settings, rest_api_key=None)
        self._children: list[Child] = []
        try:
            for _ in range(processes):
                self._children.append(Child(keyless, secret, workers))
        except OSError as err:
            self.close()
            raise SenderError(
                f"could not start the translation processes ({type(err).__name__}); "
                "nothing was sent"
            ) from err
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """End every child."""
        for child in self._children:
            child.close()

    def __enter__(self) -> TranslationPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def translated(
        self,
        items: Iterable[tuple[int, Any]],
        *,
        lost: list[tuple[int, Any]],
        linger: float,
        broken: Callable[[SenderError], None],
    ) -> Iterator[tuple[list[tuple[int, Any]], tuple[Any, ...]]]:
        """Yield ``(entries, unit)``: the children's units (see ``bundles``), chunk by chunk.

        ``entries`` are the ``(position, item)`` pairs the unit stands for: a
        run's messages, or the one message of a ``ONE`` or ``HERE`` unit (an item
        the parent prepares itself: a ``Translation`` or ``Prepared``). Chunks
        come back in input order, and within a chunk each worker's shard in
        input order. The input is read on a thread of its own: when fewer than a
        chunk's worth arrive within ``linger`` seconds, what has arrived is
        translated and yielded anyway.

        Raises:
            SenderError: a child died or stalled. ``broken`` is called with it
                first (to stop the run: ``items`` then fails what it still
                reads), the input is read to its end, and ``lost`` holds every
                item taken from ``items`` and not yet yielded, for the caller
                to fail.
        """
        children = self._children
        flight: collections.deque[tuple[Child, list[tuple[int, Any]]]] = collections.deque()
        turn = 0

        def submit(chunk: list[tuple[int, Any]]) -> None:
            nonlocal turn
            child = children[turn % len(children)]
            turn += 1
            flight.append((child, chunk))
            items = [None if isinstance(i, _HERE) else i for _, i in chunk]
            try:
                child.send(items)
            except UNPICKLABLE:
                # A message the pipe cannot carry (nested too deeply to pickle)
                # goes as None: the child hands it back, and it is prepared here.
                child.send([item if _picklable(item) else None for item in items])

        def finish() -> Iterator[tuple[list[tuple[int, Any]], tuple[Any, ...]]]:
            return _finished(flight, lost)

        feed = Intake(items, chunk=_CHUNK)
        unsent: list[tuple[int, Any]] = []
        try:
            while True:
                unsent, ended, slow = feed.collect(linger)
                while unsent:
                    chunk, unsent = unsent[:_CHUNK], unsent[_CHUNK:]
                    submit(chunk)
                    while len(flight) > _AHEAD * len(children):
                        yield from finish()
                if ended:
                    break
                if slow:
                    # The input is slow: what has arrived must not wait for more.
                    while flight:
                        yield from finish()
            while flight:
                yield from finish()
        except SenderError as err:
            broken(err)
            for _, held in flight:
                lost.extend(held)
            lost.extend(unsent)
            ended = False
            while not ended:
                rest, ended, _ = feed.collect(_POLL)
                lost.extend(rest)
            raise
        if feed.error is not None:
            raise feed.error


def _picklable(item: Any) -> bool:
    try:
        pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    except UNPICKLABLE:
        return False
    return True


def _finished(
    flight: collections.deque[tuple[Child, list[tuple[int, Any]]]],
    lost: list[tuple[int, Any]],
) -> Iterator[tuple[list[tuple[int, Any]], tuple[Any, ...]]]:
    """The oldest chunk's units with the entries each stands for (see ``translated``)."""
    child, done = flight[0]
    answer = child.answer()
    # A chunk the child could not read: each of its messages is prepared here.
    units = [(HERE, index) for index in range(len(done))] if isinstance(answer, str) else answer
    covered = [_covered(done, unit) for unit in units]
    if sum(map(len, covered)) != len(done):  # pragma: no cover - a child's bug
        raise SenderError(f"{BROKEN} (it answered for the wrong messages)")
    flight.popleft()
    for index, (entries, unit) in enumerate(zip(covered, units, strict=True)):
        try:
            yield entries, unit
        except GeneratorExit:
            for rest in covered[index + 1 :]:
                lost.extend(rest)
            raise


def serve() -> None:
    """A child's life: settings, then chunks of messages in, units out, until EOF."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        settings, workers = read_value(stdin)
        legacy = settings.legacy_track_limits
        while True:
            try:
                chunk = read_value(stdin)
            except EOFError:
                raise
            except Exception:  # noqa: BLE001 (answered: the parent prepares the chunk)
                # A message this process cannot rebuild (an object of a class
                # defined in the caller's __main__): the parent prepares the chunk.
                write_value(stdout, UNREAD)
                continue
            prepared = [
                None if message is None else prepare_message(message, settings) for message in chunk
            ]
            write_value(stdout, bundle_chunk(prepared, workers=workers, legacy_limits=legacy))
    except (EOFError, BrokenPipeError):
        return


def _covered(done: list[tuple[int, Any]], unit: tuple[Any, ...]) -> list[tuple[int, Any]]:
    """The ``(position, item)`` entries of a chunk that a unit stands for."""
    if unit[0] == RUN:
        return [done[index] for index in unit[2]]
    return [done[unit[1]]]


if __name__ == "__main__":
    # Run as a script, this file is ``__main__``: what it pickles must name the
    # package's own module, so the parent can load it.
    from segment_braze._deliver.pool import serve as _package_serve

    _package_serve()
