"""Translation in worker processes: results in input order, the key kept at home."""

from __future__ import annotations

import _multiprocessing
import json
import multiprocessing
import multiprocessing.synchronize  # loaded before SemLock is patched below
import pickle

import pytest
from helpers import identify, page, track

from segment_braze import Settings, translate
from segment_braze._replay import processes as processes_module
from segment_braze._replay import workerprocess
from segment_braze._replay.identity import Identity
from segment_braze._replay.processes import (
    Counts,
    ProcessTranslator,
    Translated,
    count_objects,
    translate_chunk,
)
from segment_braze._replay.usage import FileError, UsageError

SETTINGS = Settings(app_id="app", rest_api_key="secret-key-never-shipped", datacenter="US-03")


def messages(count):
    """Valid, dropped and invalid messages, mixed."""
    shapes = [
        lambda n: track(messageId=f"t-{n}", properties={"n": n}),
        lambda n: identify(messageId=f"i-{n}", traits={"plan": "pro", "n": n}),
        lambda n: page(messageId=f"p-{n}"),  # dropped: page tracking is off
        lambda n: track(messageId=f"x-{n}", event=""),  # invalid: no event name
    ]
    return [shapes[n % len(shapes)](n) for n in range(count)]


class TestTranslateChunk:
    """What a worker returns for each message."""

    def test_results_match_translate(self):
        """Each result carries the serialised objects, the counts, the drop or the error."""
        batch = messages(8)
        results = translate_chunk(SETTINGS, batch, keep=True)
        assert len(results) == len(batch)
        for message, result in zip(batch, results, strict=True):
            if message["type"] == "track" and not message["event"]:
                assert result.error is not None
                assert (result.dropped, result.counts, result.prepared) == (None, None, None)
                continue
            expected = translate(message, SETTINGS)
            assert result.error is None
            assert result.dropped == expected.dropped
            assert result.counts == count_objects(expected)
            if expected.dropped is not None:
                assert result.prepared is None
                continue
            assert result.prepared is not None
            sent = {
                name: [json.loads(obj) for obj in objects]
                for name, objects in (result.prepared.objects or {}).items()
            }
            assert sent == {
                "attributes": [obj.to_json() for obj in expected.attributes],
                "events": [obj.to_json() for obj in expected.events],
                "purchases": [obj.to_json() for obj in expected.purchases],
            }

    def test_line_bytes_translate_as_their_value(self):
        """A JSON line handed over as bytes gives what its parsed value gives."""
        batch = [*messages(8), track(messageId="big", properties={"n": 2**70, "x": 0.1})]
        lines = [json.dumps(message).encode() for message in batch]
        assert translate_chunk(SETTINGS, lines, keep=True) == translate_chunk(
            SETTINGS, batch, keep=True
        )

    def test_attributes_as_values_for_a_cache(self):
        """With an attribute cache the attributes come back as dicts, not serialised."""
        message = identify(messageId="i-1", traits={"plan": "pro"})
        (result,) = translate_chunk(SETTINGS, [message], keep=True, attribute_values=True)
        assert result.prepared is not None
        assert result.prepared.objects == {"attributes": [], "events": [], "purchases": []}
        assert [obj["plan"] for obj in result.prepared.attributes] == ["pro"]

    def test_counts_only_when_not_kept(self):
        """A dry run gets the counts and nothing to send."""
        results = translate_chunk(SETTINGS, messages(4), keep=False)
        assert all(result.prepared is None for result in results)
        assert results[1].counts == Counts(
            attribute_objects=1, attribute_points=2, events=0, event_points=0, purchases=0,
            operations=0, warnings=0,
        )  # fmt: skip

    def test_results_survive_pickling(self):
        """Results pickle and unpickle to equal values of the same types."""
        results = translate_chunk(SETTINGS, messages(4), keep=True)
        copies = pickle.loads(pickle.dumps(results))  # noqa: S301 (our own bytes)
        assert copies == results
        assert all(type(copy) is Translated for copy in copies)
        assert type(copies[0].counts) is Counts


class TestProcessTranslator:
    """Worker processes translate; results come back in input order."""

    def test_order_and_pass_through(self):
        """Results are in input order; a None message passes through in its place."""
        batch = messages(700)  # several chunks
        items = [(n, None if n % 5 == 0 else message) for n, message in enumerate(batch)]
        translator = ProcessTranslator(SETTINGS, workers=2, keep=True)
        try:
            results = list(translator.map(items))
        finally:
            translator.close()
        assert [tag for tag, _ in results] == list(range(700))
        for (n, result), message in zip(results, batch, strict=True):
            if n % 5 == 0:
                assert result is None
            else:
                assert result == translate_chunk(SETTINGS, [message], keep=True)[0]

    def test_workers_need_no_semaphores(self, monkeypatch):
        """Without /dev/shm (AWS Lambda) no semaphore can be made: workers translate anyway."""

        def no_semaphores(*args, **kwargs):
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(_multiprocessing, "SemLock", no_semaphores)
        with pytest.raises(OSError, match="not implemented"):
            multiprocessing.get_context("spawn").Lock()
        translator = ProcessTranslator(SETTINGS, workers=1, keep=True)
        try:
            results = list(translator.map(enumerate(messages(300))))
        finally:
            translator.close()
        assert [tag for tag, _ in results] == list(range(300))

    def test_the_key_stays_in_this_process(self):
        """The settings shipped to the workers carry no REST API key."""
        translator = ProcessTranslator(SETTINGS, workers=1, keep=False)
        try:
            shipped = translator._settings
            assert shipped.rest_api_key is None
            assert shipped.app_id == SETTINGS.app_id
            assert b"secret-key-never-shipped" not in pickle.dumps(shipped)
        finally:
            translator.close()

    def test_stopping_early(self):
        """Closing the results part-way cancels the rest and the workers stop."""
        translator = ProcessTranslator(SETTINGS, workers=1, keep=False)
        results = translator.map((n, message) for n, message in enumerate(messages(5000)))
        assert next(results)[0] == 0
        results.close()
        translator.close()

    def test_a_worker_killed_before_the_next_chunk_is_a_clear_error(self):
        """A worker killed (kill -9, out of memory) before a chunk is handed over ends the run."""
        translator = ProcessTranslator(SETTINGS, workers=1, keep=False)
        try:
            process = translator._workers[0].process
            process.kill()
            process.join(timeout=10)
            with pytest.raises(UsageError, match="worker process ended unexpectedly"):
                list(translator.map([(0, track(messageId="t-0"))]))
        finally:
            translator.close()

    def test_a_worker_killed_while_translating_is_a_clear_error(self):
        """A worker killed while its chunk is awaited ends the run the same way."""
        translator = ProcessTranslator(SETTINGS, workers=1, keep=False)
        worker = translator._workers[0]
        try:
            worker.send(processes_module._CHUNK_TASK, messages(4))
            worker.process.kill()
            with pytest.raises(UsageError, match="worker process ended unexpectedly"):
                worker.answer(processes_module._CHUNK_TASK)
        finally:
            translator.close()

    def test_a_worker_that_stops_answering_is_given_up_on(self, tmp_path, monkeypatch):
        """A worker stuck on a message (here, in a transform) stops the run within the limit."""
        (tmp_path / "stuck_rules.py").write_text(
            "import threading\ndef rules(message):\n    threading.Event().wait()  # never set\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(workerprocess, "STALL", 0.5)
        monkeypatch.setattr(workerprocess, "_STOP_WAIT", 0.5)
        translator = ProcessTranslator(
            SETTINGS, workers=1, keep=False, transform="stuck_rules:rules"
        )
        # Chunks of 5 MB: more than a pipe holds, so the reading thread must not
        # write them itself, or it would block on the full pipe for ever.
        items = [
            (n, (track(messageId=f"t-{n}", properties={"pad": f"{n:x<20000}"}), None))
            for n in range(1_200)
        ]
        try:
            with pytest.raises(UsageError, match=r"did not answer within 0\.5 s"):
                list(translator.map(items))
        finally:
            translator.close()
        assert not translator._workers[0].process.is_alive()

    @pytest.mark.parametrize("stuck", ["no answer", "a second Ctrl-C"])
    def test_close_never_waits_for_ever_on_the_caches_last_save(self, monkeypatch, stuck):
        """A worker that does not answer the last save, or Ctrl-C meanwhile, ends the wait."""
        translator = ProcessTranslator(SETTINGS, workers=1, keep=False)
        waits = []

        def unanswered(kind, *, wait=None):
            waits.append(wait)
            raise TimeoutError if stuck == "no answer" else KeyboardInterrupt

        monkeypatch.setattr(translator, "_settle_answers", lambda close=False: True)
        monkeypatch.setattr(translator._workers[0], "answer", unanswered)
        if stuck == "no answer":
            translator.close()  # returns: what was not saved is sent again next run
        else:
            with pytest.raises(KeyboardInterrupt):
                translator.close()
        assert waits == [processes_module._SETTLE_WAIT]
        assert not translator._workers[0].process.is_alive()
        translator.close()  # closed once: a second call does nothing
        assert len(waits) == 1

    def test_close_after_a_stall_does_not_wait_for_the_last_save(self, monkeypatch):
        """A worker given up on is not waited for again: the run ends, not a minute later."""
        translator = ProcessTranslator(SETTINGS, workers=1, keep=False)
        waits = []

        def stalled(kind, *, wait=None):
            waits.append((kind, wait))
            raise TimeoutError

        monkeypatch.setattr(translator, "_settle_answers", lambda close=False: True)
        monkeypatch.setattr(translator._workers[0], "answer", stalled)
        with pytest.raises(UsageError, match="did not answer within"):
            list(translator.map([(0, track(messageId="t-0"))]))
        translator.close()
        assert waits == [(processes_module._CHUNK_TASK, None)]
        assert not translator._workers[0].process.is_alive()

    def test_a_last_save_that_failed_is_reported(self, monkeypatch):
        """A cache the worker could not write at the end (a full disk) is one line, not silence."""
        translator = ProcessTranslator(SETTINGS, workers=1, keep=False)

        def failed(kind, *, wait=None):
            raise FileError("cannot write the attribute cache c.sqlite: the disk is full")

        monkeypatch.setattr(translator, "_settle_answers", lambda close=False: True)
        monkeypatch.setattr(translator._workers[0], "answer", failed)
        with pytest.raises(FileError, match="the disk is full"):
            translator.close()
        assert not translator._workers[0].process.is_alive()

    def test_a_chunk_the_pipe_cannot_carry_is_translated_here(self):
        """A message nested too deeply to pickle costs time, not the message."""
        deep: dict[str, object] = {}
        inner = deep
        for _ in range(5000):
            inner["a"] = {}
            inner = inner["a"]  # type: ignore[assignment]
        chunk = [
            (0, track(messageId="t-0")),
            (1, None),
            (2, track(messageId="t-2", properties={"deep": deep})),
        ]
        with pytest.raises(RecursionError):
            pickle.dumps(chunk[2][1])
        translator = ProcessTranslator(SETTINGS, workers=1, keep=True)
        try:
            results = list(translator.map(chunk))
        finally:
            translator.close()
        assert [tag for tag, _ in results] == [0, 1, 2]
        assert results[1][1] is None
        assert results[0][1].prepared.message_id == "t-0"
        assert results[2][1].error is None
        assert results[2][1].prepared.message_id == "t-2"


class TestTransformInWorkers:
    """With --transform, a worker runs it first and says who the returned message is."""

    def test_transform_then_translate(self, tmp_path, monkeypatch):
        """Dropped and failed messages stop at the transform; the rest carry their identity."""
        (tmp_path / "worker_rules.py").write_text(
            "def rules(message):\n"
            "    if message['messageId'] == 't-0':\n"
            "        return None\n"
            "    if message['messageId'] == 't-1':\n"
            "        raise KeyError('x')\n"
            "    return message | {'messageId': 'renamed-' + message['messageId']}\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        batch = [(track(messageId=f"t-{n}"), "src-folder") for n in range(3)]
        dropped, failed, kept = translate_chunk(
            SETTINGS, batch, keep=True, transform="worker_rules:rules"
        )
        assert dropped == Translated(error=None, dropped="dropped by transform", transformed=True)
        assert failed == Translated(error="transform raised KeyError: 'x'", transformed=True)
        assert kept.identity == Identity(
            source="src-folder", id="m:renamed-t-2", time=kept.identity.time
        )
        assert kept.prepared is not None
        assert not kept.transformed
