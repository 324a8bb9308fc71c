"""The attribute cache held by the one translating worker process of a replay."""

from __future__ import annotations

import json
import os
from unittest.mock import patch

import pytest
from helpers import identify

from segment_braze import Settings
from segment_braze._cache.cache import AttributeCache
from segment_braze._replay import processes as processes_module
from segment_braze._replay.cacheprocess import CacheLink
from segment_braze._replay.processes import ProcessTranslator

SETTINGS = Settings(app_id="app", rest_api_key="secret-key-never-shipped", datacenter="US-03")
TRAITS = {"plan": "pro", "seats": 3}
# What translate() makes of an identify of user-1 with TRAITS (the settings'
# default creates profiles Braze does not know yet).
OBJECT = {"external_id": "user-1", **TRAITS, "_update_existing_only": False}


def _translated(translator, *messages):
    """The prepared results of ``messages``, translated as one chunk."""
    results = list(translator.map(enumerate(messages)))
    return [result.prepared for _, result in results]


def _sent(prepared):
    """The attributes objects a prepared message sends, parsed."""
    return [json.loads(obj) for obj in prepared.objects["attributes"]]


def _link(tmp_path):
    return CacheLink(AttributeCache.sqlite(str(tmp_path / "cache.sqlite")), "cache.sqlite")


def _answered_then_again(held, answer, traits):
    """An identify with TRAITS translated, its token answered, then one with ``traits``."""
    translator, link = held
    (first,) = _translated(translator, identify(messageId="i-1", traits=TRAITS))
    getattr(link, answer)(list(first.cache_tokens))
    (second,) = _translated(translator, identify(messageId="i-2", traits=traits))
    return second


@pytest.fixture
def held(tmp_path):
    """A translator whose one worker process holds the cache, and the main process's link."""
    link = _link(tmp_path)
    translator = ProcessTranslator(
        SETTINGS, workers=1, keep=True, attribute_values=True, cache=link
    )
    yield translator, link
    translator.close()


class TestHeldByTheWorker:
    """One worker process filters, and settles what the main process hands back."""

    def test_bytes_and_tokens_come_back_not_values(self, held):
        """The main process receives the kept objects serialised, and a token for each."""
        translator, _ = held
        (prepared,) = _translated(translator, identify(messageId="i-1", traits=TRAITS))
        assert prepared.attributes == ()
        assert _sent(prepared) == [OBJECT]
        assert len(prepared.cache_tokens) == 1
        assert prepared.attribute_keys == 2
        assert prepared.cache_saved == (0, 0)

    def test_accepted_values_are_left_out_of_later_messages(self, held):
        """Once its token is acknowledged, an unchanged value is not sent again."""
        second = _answered_then_again(held, "acknowledge", {"plan": "max", "seats": 3})
        assert _sent(second) == [
            {"external_id": "user-1", "plan": "max", "_update_existing_only": False}
        ]
        assert second.attribute_keys == 1
        assert second.cache_saved == (1, 1)

    def test_refused_values_are_sent_again(self, held):
        """A released token (Braze refused it, or it never went) remembers nothing."""
        second = _answered_then_again(held, "release", TRAITS)
        assert _sent(second) == [OBJECT]
        assert second.cache_saved == (0, 0)

    def test_close_saves_the_answers_that_came_last(self, held, tmp_path):
        """Answers in after the last chunk are saved when the translator closes."""
        translator, link = held
        first, _ = _translated(
            translator,
            identify(messageId="i-1", traits=TRAITS),
            identify(messageId="i-2", userId="user-2", traits=TRAITS),
        )
        link.acknowledge(list(first.cache_tokens))
        translator.close()
        with AttributeCache.sqlite(str(tmp_path / "cache.sqlite")) as again:
            result = again.filter_objects(
                [{"external_id": "user-1", **TRAITS}, {"external_id": "user-2", **TRAITS}]
            )
        # user-1's values were acknowledged; user-2's were never answered.
        assert result.objects == [{"external_id": "user-2", **TRAITS}]
        assert result.saved == 2

    def test_an_answer_read_cut_short_by_ctrl_c_does_not_hang_the_close(self, held, tmp_path):
        """Ctrl-C part-way through reading an answer: close still saves the last answers."""
        translator, link = held
        (first,) = _translated(translator, identify(messageId="i-1", traits=TRAITS))
        link.acknowledge(list(first.cache_tokens))
        worker = translator._workers[0]
        second = identify(messageId="i-2", userId="user-2", traits=TRAITS)
        worker.send(processes_module._CHUNK_TASK, [second])
        answers = worker._answers

        def cut_short():
            os.read(answers.fileno(), 4)  # the answer's length, and no more
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt), patch.object(answers, "recv_bytes", cut_short):
            worker.answer(processes_module._CHUNK_TASK)
        translator.close()  # returns: the answers are no longer read, the worker saves them
        assert not worker.process.is_alive()
        with AttributeCache.sqlite(str(tmp_path / "cache.sqlite")) as again:
            result = again.filter_objects([{"external_id": "user-1", **TRAITS}])
        assert result.saved == 2

    def test_with_more_workers_the_cache_stays_here(self, tmp_path):
        """Two worker processes cannot share one cache's record: values come back as dicts."""
        translator = ProcessTranslator(
            SETTINGS, workers=2, keep=True, attribute_values=True, cache=_link(tmp_path)
        )
        try:
            (prepared,) = _translated(translator, identify(messageId="i-1", traits=TRAITS))
        finally:
            translator.close()
        assert prepared.cache_tokens == ()
        assert list(prepared.attributes) == [OBJECT]


class TestCacheLink:
    """The main process's side: tokens wait for the worker, objects go to the cache."""

    def test_tokens_are_taken_once_and_objects_remembered_here(self, tmp_path):
        """take() hands over each token once; an object (translated here) is remembered here."""
        link = _link(tmp_path)
        obj = {"external_id": "user-1", **TRAITS}
        kept = link.filter_objects([obj]).objects
        link.acknowledge([4, *kept, 5])
        link.release([6])
        assert link.take() == ([4, 5], [6])
        assert link.take() == ([], [])
        assert link.filter_objects([obj]).saved == 2
