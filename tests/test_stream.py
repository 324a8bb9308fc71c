"""Sequences of JSON values: pretty-printed, concatenated, broken; each value read on its own."""

from __future__ import annotations

import io
import json

from segment_braze._replay.stream import Lines, records


def message(n, **fields):
    """A minimal Segment track message numbered ``n``."""
    return {"type": "track", "event": "Played", "userId": "u1", "messageId": f"m{n}", **fields}


def pretty(*values):
    """Values as jq prints them: each pretty-printed, one after the other."""
    return "".join(json.dumps(value, indent=2) + "\n" for value in values)


def read(text, **options):
    """Every record of ``text`` as ``(line, messageId or error)``."""
    found = records(Lines(io.BytesIO(text.encode())), "in", **options)
    return [(record.line, record.error or record.message_id) for record in found]


def starts(text):
    """The lines on which top-level values start in pretty-printed ``text``."""
    return [n for n, line in enumerate(text.splitlines(), 1) if line.startswith(("{", "["))]


class CountingStream(io.BytesIO):
    """A byte stream that counts the lines taken from it."""

    taken = 0

    def readline(self, size=-1):
        """The next line, counted."""
        self.taken += 1
        return super().readline(size)


class TestPrettyPrinted:
    """Values spread over lines are read value by value, each at the line it starts on."""

    def test_jq_output(self):
        """Pretty-printed objects as jq prints them, one after another, are each a message."""
        text = pretty(message(1, properties={"a": [1, {"b": 2}]}), message(2), message(3))
        assert read(text) == list(zip(starts(text), ["m1", "m2", "m3"], strict=True))

    def test_values_sharing_lines(self):
        """Values separated by spaces on one line, or joined by ``} {``, are all read."""
        one_line = json.dumps(message(1)) + " " + json.dumps(message(2)) + "\n"
        assert read(one_line) == [(1, "m1"), (1, "m2")]
        joined = json.dumps(message(1), indent=2) + " " + json.dumps(message(2), indent=2)
        second = joined.splitlines().index("} {") + 1
        assert read(joined) == [(1, "m1"), (second, "m2")]

    def test_a_pretty_value_among_json_lines(self):
        """A pretty-printed message between JSON Lines is one message."""
        text = json.dumps(message(1)) + "\n" + pretty(message(2)) + json.dumps(message(3)) + "\n"
        last = len(text.splitlines())
        assert read(text) == [(1, "m1"), (2, "m2"), (last, "m3")]

    def test_envelopes_and_arrays_in_a_stream(self):
        """Pretty envelopes and arrays in a sequence: every message, the envelope's context too."""
        envelope = {"context": {"ip": "1.2.3.4"}, "batch": [message(1), message(2)]}
        text = pretty(envelope, [message(3)])
        found = list(records(Lines(io.BytesIO(text.encode())), "in"))
        assert [record.message_id for record in found] == ["m1", "m2", "m3"]
        assert found[0].value["context"] == {"ip": "1.2.3.4"}
        lines = text.splitlines()
        assert [record.line for record in found] == [
            n for n, line in enumerate(lines, 1) if line.strip() == "{" and n > 1
        ][:3]

    def test_streamed_value_by_value(self):
        """The first message is read before the rest of the stream: memory holds one value."""
        text = pretty(*(message(n) for n in range(1000)))
        stream = CountingStream(text.encode())
        found = records(Lines(stream), "in")
        assert next(found).message_id == "m0"
        per_value = len(pretty(message(0)).splitlines())
        assert stream.taken <= per_value + 1
        assert sum(1 for _ in found) == 999


class TestBrokenValues:
    """A value that does not parse costs only itself; reading resumes at the next value."""

    def test_missing_comma(self):
        """A broken pretty value is one error at its first line, naming where it broke."""
        broken = pretty(message(2, properties={"a": 1})).replace('"a": 1', '"a": 1 "b": 2')
        text = pretty(message(1)) + broken + pretty(message(3))
        first, second, third = starts(text)
        bad_line = text.splitlines().index('    "a": 1 "b": 2') + 1
        assert read(text) == [
            (first, "m1"),
            (second, f"not JSON: Expecting ',' delimiter at line {bad_line} column 12"),
            (third, "m3"),
        ]
        (record,) = [r for r in records(Lines(io.BytesIO(text.encode())), "in") if r.error]
        assert record.text == broken.rstrip()  # kept whole for the dead-letter file

    def test_nested_too_deeply_on_one_line(self):
        """A JSON line nested 3,000 deep is one invalid record; the lines around it are read."""
        deep = json.dumps(message(2))[:-1] + ', "p": ' + '{"a":' * 3000 + "1" + "}" * 3000 + "}"
        text = "\n".join([json.dumps(message(1)), deep, json.dumps(message(3))]) + "\n"
        assert read(text) == [
            (1, "m1"),
            (2, "not JSON: nested too deeply to read (over about 1,000 levels)"),
            (3, "m3"),
        ]

    def test_a_number_of_thousands_of_digits(self):
        """A 5,000-digit number is one invalid value, said in the input's words."""
        huge = json.dumps(message(2))[:-1] + ', "n": ' + "9" * 5000 + "}"
        text = "\n".join([json.dumps(message(1)), huge, json.dumps(message(3))]) + "\n"
        assert read(text) == [
            (1, "m1"),
            (2, "not JSON: a number of more than 4,300 digits"),
            (3, "m3"),
        ]
        spread = pretty(message(1)) + huge.replace(", ", ",\n  ") + "\n" + pretty(message(3))
        assert [error for _, error in read(spread)][1].startswith(
            "not JSON: a number of more than 4,300 digits"
        )

    def test_nested_too_deeply_over_lines(self):
        """A pretty-printed value nested 3,000 deep is one invalid record at its first line."""
        deep = "{\n" + '"a": {\n' * 3000 + "1" + "\n}" * 3000 + "\n}\n"
        text = pretty(message(1)) + deep + pretty(message(3))
        first, second, third = starts(text)
        assert read(text) == [
            (first, "m1"),
            (second, "not JSON: nested too deeply to read (over about 1,000 levels) at column 1"),
            (third, "m3"),
        ]

    def test_cut_short_then_the_next_value(self):
        """A value cut inside a string (an interrupted write) ends there; the next is read."""
        whole = pretty(message(2, properties={"title": "Alabama"}))
        cut = whole[: whole.index("Alabama") + 3] + "\n"
        text = pretty(message(1)) + cut + pretty(message(3))
        found = read(text)
        assert [mid for _, mid in found if not mid.startswith("not JSON")] == ["m1", "m3"]
        assert found[1][0] == starts(text)[1]
        assert found[1][1].startswith("not JSON: Unterminated string starting at line")

    def test_damaged_line_skips_the_rest_of_its_value(self):
        """After a damaged line, the value's remaining lines are skipped and counted."""
        whole = pretty(message(2, properties={"a": "x", "b": 1, "c": 2}))
        damaged = whole.replace('"a": "x",', '"a": "x,')
        text = pretty(message(1)) + damaged + pretty(message(3))
        found = read(text)
        assert [mid for _, mid in found][::2] == ["m1", "m3"]
        skipped = len(damaged.splitlines()) - damaged.splitlines().index('    "a": "x,') - 1
        assert found[1][1].endswith(f"({skipped} more lines skipped up to the next value)")

    def test_unclosed_value_ends_where_the_next_begins(self):
        """A value whose closing brace is missing ends at the next value's opening brace."""
        unclosed = pretty(message(2)).rstrip().removesuffix("}")
        text = pretty(message(1)) + unclosed + "\n" + pretty(message(3))
        found = read(text)
        assert [found[0][1], found[2][1]] == ["m1", "m3"]
        assert found[1][0] == starts(text)[1]
        assert found[1][1].startswith("not JSON:")

    def test_bracket_that_does_not_match(self):
        """A ``]`` closing a ``{`` breaks the value, not the ones around it."""
        text = pretty(message(1)) + '{\n  "type": "track",\n  "a": [1, 2}\n}\n' + pretty(message(3))
        found = read(text)
        assert [found[0][1], found[-1][1]] == ["m1", "m3"]
        assert len(found) == 3

    def test_value_too_large(self):
        """A value over the limit is reported at its line and skipped, unread."""
        text = pretty(message(1), message(2, padding="x" * 500), message(3))
        found = read(text, max_value=300)
        assert [mid for _, mid in found][::2] == ["m1", "m3"]
        assert found[1][0] == starts(text)[1]
        assert found[1][1].startswith("not read: a value larger than 300 bytes")

    def test_not_utf8(self):
        """A value spread over lines that is not UTF-8 is reported, its text kept."""
        data = (
            pretty(message(1)).encode() + b'{\n  "type": "\xff"\n}\n' + pretty(message(3)).encode()
        )
        found = list(records(Lines(io.BytesIO(data)), "in"))
        assert [r.message_id for r in found] == ["m1", None, "m3"]
        assert (found[1].error or "").startswith("not JSON: 'utf-8' codec can't decode")
        assert found[1].text == '{\n  "type": "\ufffd"\n}'

    def test_json_lines_keep_their_bad_lines(self):
        """In JSON Lines, a line opening an object it does not close costs only that line."""
        text = "\n".join(
            [json.dumps(message(1)), '{"type": "track",', "{oops", json.dumps(message(4))]
        )
        found = read(text)
        assert [line for line, _ in found] == [1, 2, 3, 4]
        assert [mid for _, mid in found][::3] == ["m1", "m4"]

    def test_line_too_long(self):
        """A line over the limit is reported at its line and skipped unread; reading goes on."""
        long_line = json.dumps(message(2, padding="x" * 500))
        text = "\n".join([json.dumps(message(1)), long_line, json.dumps(message(3))]) + "\n"
        stream = io.BytesIO(text.encode())
        found = [(r.line, r.error or r.message_id) for r in records(Lines(stream, limit=300), "in")]
        assert found == [(1, "m1"), (2, "not read: a line longer than 300 bytes"), (3, "m3")]

    def test_line_too_long_inside_a_value(self):
        """A line over the limit inside a pretty-printed value ends that value."""
        text = pretty(message(1)) + '{\n  "a": "' + "x" * 500 + '"\n}\n' + pretty(message(3))
        found = list(records(Lines(io.BytesIO(text.encode()), limit=300), "in"))
        assert [r.message_id for r in found if r.error is None] == ["m1", "m3"]
        (broken,) = [r for r in found if r.error]
        assert broken.line == starts(text)[1]
        assert broken.error.endswith(
            "(a line longer than 300 bytes was skipped) (1 more line skipped up to the next value)"
        )


class TestLineBytes:
    """A JSON line that is one message keeps its bytes, for a worker process to parse."""

    def test_a_json_line_keeps_its_bytes(self):
        """Each one-message line keeps exactly its bytes, without the line end or the BOM."""
        first, second = json.dumps(message(1)), json.dumps(message(2, count=2**70))
        stream = io.BytesIO(b"\xef\xbb\xbf" + first.encode() + b"\r\n" + second.encode() + b"\n")
        found = list(records(Lines(stream), "in"))
        assert [record.data for record in found] == [first.encode(), second.encode()]

    def test_values_of_arrays_envelopes_and_pretty_text_keep_none(self):
        """Messages that share a line, or span several, are handed on as values only."""
        array = json.dumps([message(1), message(2)])
        envelope = json.dumps({"batch": [message(3)], "context": {"library": {"name": "x"}}})
        text = "\n".join([array, envelope]) + "\n" + pretty(message(4))
        found = list(records(Lines(io.BytesIO(text.encode())), "in"))
        assert [record.message_id for record in found] == ["m1", "m2", "m3", "m4"]
        assert [record.data for record in found] == [None] * 4
