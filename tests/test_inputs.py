"""Reading Segment archives: every format, with the file and line of each message."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_braze._replay import inputs
from segment_braze._replay.inputs import Meter, expand_paths, read_source, total_bytes
from segment_braze._replay.usage import UsageError


def message(n, **fields):
    """A minimal Segment track message numbered ``n``."""
    return {"type": "track", "event": "Played", "userId": "u1", "messageId": f"m{n}", **fields}


def lines(*values):
    """JSON Lines text of ``values``."""
    return "".join(json.dumps(value) + "\n" for value in values)


def read(path):
    """Every record of ``path`` as ``(where, messageId or error)``."""
    return [(record.where, record.error or record.message_id) for record in read_source(str(path))]


@pytest.fixture
def write(tmp_path):
    """Write text (or bytes) to a file under tmp_path and return its path."""

    def write(name, content, *, compress=False):
        path = tmp_path / name
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(gzip.compress(data) if compress else data)
        return path

    return write


class TestJsonLines:
    """One message per line, streamed, with 1-based line numbers."""

    def test_each_line_is_a_message(self, write):
        """Each line becomes a record that knows its file and line."""
        path = write("a.jsonl", lines(message(1), message(2)))
        assert read(path) == [(f"{path}:1", "m1"), (f"{path}:2", "m2")]

    def test_blank_lines_are_skipped_but_counted(self, write):
        """Blank lines are not messages, but line numbers still match the file."""
        path = write("a.jsonl", "\n" + lines(message(1)) + "\n  \n" + lines(message(2)))
        assert read(path) == [(f"{path}:2", "m1"), (f"{path}:5", "m2")]

    def test_byte_order_mark_is_ignored(self, write):
        """A UTF-8 byte order mark before the first line does not make it invalid."""
        path = write("a.json", b"\xef\xbb\xbf" + lines(message(1)).encode())
        assert read(path) == [(f"{path}:1", "m1")]

    @pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
    def test_utf16_and_utf32_with_a_byte_order_mark(self, write, encoding):
        """A file with a UTF-16 or UTF-32 mark (PowerShell 5's `>` writes UTF-16) is read whole."""
        text = lines(message(1, properties={"city": "Zürich"}), message(2))
        bom = "\ufeff".encode(encoding)
        path = write("a.jsonl", bom + text.replace("\n", "\r\n").encode(encoding))
        assert read(path) == [(f"{path}:1", "m1"), (f"{path}:2", "m2")]
        (first, _) = read_source(str(path))
        assert first.value["properties"] == {"city": "Zürich"}

    def test_gzipped_utf16(self, write):
        """A gzipped UTF-16 file is read whole too; what cannot be decoded costs its line."""
        data = "\ufeff".encode("utf-16-le") + lines(message(1)).encode("utf-16-le")
        data += b"\x00\xd8" + lines(message(2)).encode("utf-16-le")  # a lone surrogate
        data += lines(message(3)).encode("utf-16-le")
        path = write("a.gz", data, compress=True)
        found = read(path)
        assert [where for where, _ in found] == [f"{path}:1", f"{path}:2", f"{path}:3"]
        assert (found[0][1], found[2][1]) == ("m1", "m3")
        assert found[1][1].startswith("not JSON: Expecting value")

    def test_utf16_lines_are_read_a_bounded_piece_at_a_time(self):
        """A UTF-16 line longer than asked for comes in pieces, so a huge line is never held."""
        data = ("\ufeff" + "x" * 50_000 + "\n" + "short\n").encode("utf-16-le")
        stream = inputs._as_utf8(io.BufferedReader(io.BytesIO(data)), data[:4])
        pieces = [stream.readline(20_001) for _ in range(4)]
        assert [len(piece) for piece in pieces] == [20_001, 20_001, 9_999, 6]
        assert pieces[3] == b"short\n"
        assert stream.readline(20_001) == b""

    def test_no_trailing_newline(self, write):
        """The last line needs no newline."""
        path = write("a.jsonl", lines(message(1)) + json.dumps(message(2)))
        assert [where for where, _ in read(path)] == [f"{path}:1", f"{path}:2"]

    def test_empty_file_has_no_records(self, write):
        """An empty file (or one of blank lines) yields nothing."""
        assert read(write("a.jsonl", "\n\n")) == []


class TestGzip:
    """Gzip is detected by its magic bytes, whatever the file is called."""

    def test_gzipped_lines(self, write):
        """A .gz archive reads like the plain file."""
        path = write("a.jsonl.gz", lines(message(1), message(2)), compress=True)
        assert read(path) == [(f"{path}:1", "m1"), (f"{path}:2", "m2")]

    def test_detected_without_the_suffix(self, write):
        """A gzipped file named .jsonl is still decompressed."""
        path = write("a.jsonl", lines(message(1)), compress=True)
        assert read(path) == [(f"{path}:1", "m1")]

    def test_truncated_archive_keeps_what_came_before(self, write):
        """A truncated gzip stream yields the lines before the cut, then one error."""
        data = gzip.compress(lines(*(message(n) for n in range(2000))).encode())
        path = write("cut.gz", data[: len(data) // 2])
        records = list(read_source(str(path)))
        assert records[0].message_id == "m0"
        assert "corrupt or truncated" in (records[-1].error or "")
        assert "rest of this file is skipped" in (records[-1].error or "")
        assert all(record.error is None for record in records[:-1])

    def test_concatenated_members(self, write):
        """Several gzip members in one file (as `cat a.gz b.gz` makes) are all read."""
        data = gzip.compress(lines(message(1)).encode()) + gzip.compress(lines(message(2)).encode())
        assert [mid for _, mid in read(write("two.gz", data))] == ["m1", "m2"]


class TestArrays:
    """A JSON array of messages, on one line or spread over the file."""

    def test_array_on_one_line(self, write):
        """Each element of a one-line array is a record with its index."""
        path = write("a.json", json.dumps([message(1), message(2)]))
        assert read(path) == [(f"{path}:1 item 0", "m1"), (f"{path}:1 item 1", "m2")]

    def test_pretty_printed_array(self, write):
        """A pretty-printed array gives each message the line it starts on."""
        path = write("a.json", json.dumps([message(1), message(2)], indent=2))
        text = path.read_text().splitlines()
        starts = [number for number, line in enumerate(text, 1) if line == "  {"]
        assert read(path) == [(f"{path}:{starts[0]}", "m1"), (f"{path}:{starts[1]}", "m2")]

    def test_one_element_per_line(self, write):
        """An array written one element per line (even a single one) is one document."""
        for values in ([message(1)], [message(1), message(2)]):
            text = "[\n" + ",\n".join(json.dumps(v) for v in values) + "\n]\n"
            path = write("a.json", text)
            assert read(path) == [(f"{path}:{n + 2}", f"m{n + 1}") for n in range(len(values))]

    def test_gzipped_pretty_array(self, write):
        """Whole-file documents are detected inside gzip too."""
        path = write("a.json.gz", json.dumps([message(1)], indent=1), compress=True)
        assert read(path) == [(f"{path}:2", "m1")]

    def test_corrupt_element_stops_the_file_not_the_run(self, write):
        """Elements before a syntax error are read; the error names its line."""
        text = '[\n  {"type": "track", "messageId": "m1"},\n  {"type": \n]\n'
        path = write("a.json", text)
        records = read(path)
        assert records[0] == (f"{path}:2", "m1")
        assert records[1][0] == f"{path}:4"
        assert records[1][1].startswith("not JSON:")

    def test_unterminated_array(self, write):
        """An array cut short is reported, after the elements it had."""
        path = write("a.json", '[\n {"type": "track", "messageId": "m1"},\n')
        records = read(path)
        assert records[0][1] == "m1"
        assert "Unterminated array" in records[1][1]

    def test_text_after_the_array_is_the_next_value(self, write):
        """Text after the closing bracket is read as the next value: here one bad line."""
        path = write("a.json", '[\n {"type": "track", "messageId": "m1"}\n]\ntrailing\n')
        assert read(path) == [
            (f"{path}:2", "m1"),
            (f"{path}:4", "not JSON: Expecting value at column 1"),
        ]


class TestEnvelopes:
    """Segment batch envelopes: {"batch": [...]} on a line or as the whole file."""

    def test_envelope_per_line(self, write):
        """Each message of a one-line envelope is a record with its index."""
        path = write("a.jsonl", lines({"batch": [message(1), message(2)]}, message(3)))
        assert read(path) == [
            (f"{path}:1 item 0", "m1"),
            (f"{path}:1 item 1", "m2"),
            (f"{path}:2", "m3"),
        ]

    def test_envelope_context_applies_to_each_message(self, write):
        """Segment: the batch's context, integrations and sentAt apply to every call."""
        envelope = {
            "batch": [message(1, context={"ip": "1.2.3.4"}), message(2, sentAt="own")],
            "context": {"ip": "9.9.9.9", "locale": "de-DE"},
            "integrations": {"All": True},
            "sentAt": "2024-05-01T00:00:00Z",
        }
        first, second = (r.value for r in read_source(str(write("a.jsonl", lines(envelope)))))
        assert first["context"] == {"ip": "1.2.3.4", "locale": "de-DE"}  # the message wins
        assert first["integrations"] == {"All": True}
        assert first["sentAt"] == "2024-05-01T00:00:00Z"
        assert second["sentAt"] == "own"

    def test_pretty_printed_envelope(self, write):
        """A whole-file envelope gives each message its own line."""
        envelope = {"sentAt": "2024-05-01T00:00:00Z", "batch": [message(1), message(2)]}
        path = write("batch.json", json.dumps(envelope, indent=2))
        records = list(read_source(str(path)))
        assert [r.message_id for r in records] == ["m1", "m2"]
        assert [r.line for r in records] == [4, 10]
        assert records[0].value["sentAt"] == "2024-05-01T00:00:00Z"

    def test_pretty_printed_single_message(self, write):
        """A file holding one pretty-printed message is one record."""
        path = write("one.json", json.dumps(message(1), indent=2))
        assert read(path) == [(f"{path}:1", "m1")]


class TestInvalid:
    """Bad input is a record with an error and the file and line; reading goes on."""

    @pytest.mark.parametrize(
        ("line", "error"),
        [
            ("not json", "not JSON: Expecting value at column 1"),
            ('{"type": "track",', "not JSON:"),
            ('{"type": "track", "n": NaN}', "not JSON: NaN is not JSON"),
            ("5", "not a Segment message: a number, not an object"),
            ('"text"', "not a Segment message: a string, not an object"),
            ("null", "not a Segment message: null, not an object"),
            ('{"event": "x"}', 'not a Segment message: no "type"'),
        ],
    )
    def test_bad_line_between_good_ones(self, write, line, error):
        """Each kind of bad line is reported at its line, between good messages."""
        path = write("a.jsonl", lines(message(1)) + line + "\n" + lines(message(2)))
        records = read(path)
        assert records[0] == (f"{path}:1", "m1")
        assert records[1][0] == f"{path}:2"
        assert records[1][1].startswith(error)
        assert records[2] == (f"{path}:3", "m2")

    def test_invalid_utf8(self, write):
        """A line that is not UTF-8 is reported, and its text kept for the dead letter."""
        path = write("a.jsonl", b'{"type": "\xff"}\n' + lines(message(1)).encode())
        first, second = read_source(str(path))
        assert (first.error or "").startswith("not JSON")
        assert first.text == '{"type": "\ufffd"}'
        assert second.message_id == "m1"

    def test_raw_text_is_kept(self, write):
        """An unparseable line keeps its text, without the line break."""
        (record,) = read_source(str(write("a.jsonl", "garbage\r\n")))
        assert record.text == "garbage"
        assert record.value is None

    @pytest.mark.parametrize("opening", ["{bad\n{also bad\n", "[oops\n[more\n"])
    def test_two_bad_first_lines_do_not_hide_the_rest(self, write, opening):
        """Two unparseable first lines look like a document, yet good lines still count."""
        path = write("a.jsonl", opening + lines(message(1), message(2)))
        records = read(path)
        assert [where for where, _ in records] == [f"{path}:{n}" for n in (1, 2, 3, 4)]
        assert records[0][1].startswith("not JSON")
        assert [mid for _, mid in records[2:]] == ["m1", "m2"]

    def test_batch_item_that_is_not_an_object(self, write):
        """A non-object inside an envelope is reported with its index."""
        path = write("a.jsonl", lines({"batch": [message(1), 7]}))
        assert read(path)[1] == (
            f"{path}:1 item 1",
            "not a Segment message: a number, not an object",
        )

    def test_missing_file_is_a_record(self, tmp_path):
        """A file that vanished before reading is an error record, not a crash."""
        path = tmp_path / "gone.jsonl"
        assert read(path) == [(str(path), "cannot read: No such file or directory")]


class TestStdin:
    """``-`` reads standard input, plain or gzipped."""

    @pytest.mark.parametrize("compress", [False, True])
    def test_stdin(self, monkeypatch, compress):
        """Messages from stdin are named <stdin>."""
        data = lines(message(1)).encode()
        stdin = io.TextIOWrapper(
            io.BufferedReader(io.BytesIO(gzip.compress(data) if compress else data))
        )
        monkeypatch.setattr(sys, "stdin", stdin)
        assert [(r.where, r.message_id) for r in read_source("-")] == [("<stdin>:1", "m1")]


class TestPaths:
    """Files as given; folders recursively, in name order."""

    def test_folders_in_name_order(self, tmp_path):
        """Files under a folder come sorted by their path, folders included."""
        for name in ("b/2.jsonl.gz", "a/9.json", "a/10.jsonl", "c.ndjson"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("")
        files, skipped = expand_paths([str(tmp_path)])
        names = [Path(f).relative_to(tmp_path).as_posix() for f in files]
        assert names == ["a/10.jsonl", "a/9.json", "b/2.jsonl.gz", "c.ndjson"]
        assert skipped == 0

    def test_other_and_hidden_files_are_skipped_and_counted(self, tmp_path):
        """A folder's README, hidden files and hidden folders are not read."""
        for name in ("README.md", ".hidden.jsonl", ".git/x.jsonl", "ok.jsonl"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("")
        files, skipped = expand_paths([str(tmp_path)])
        assert [Path(f).name for f in files] == ["ok.jsonl"]
        assert skipped == 2  # README.md and .hidden.jsonl; .git is not entered

    def test_excluded_files(self, tmp_path):
        """Our own files (state, dead letter) in an input folder are never read."""
        (tmp_path / "a.jsonl").write_text("")
        (tmp_path / "dead.jsonl").write_text("")
        files, _ = expand_paths([str(tmp_path)], exclude={(tmp_path / "dead.jsonl").resolve()})
        assert [Path(f).name for f in files] == ["a.jsonl"]

    def test_files_keep_the_given_order_and_any_name(self, tmp_path):
        """Named files are read in the order given, whatever their suffix."""
        for name in ("z.txt", "a.jsonl"):
            (tmp_path / name).write_text("")
        given = [str(tmp_path / "z.txt"), "-", str(tmp_path / "a.jsonl")]
        assert expand_paths(given) == (given, 0)

    def test_missing_path_is_a_usage_error(self, tmp_path):
        """A path that does not exist stops the command before anything is sent."""
        with pytest.raises(UsageError, match="no such file or folder"):
            expand_paths([str(tmp_path / "nope")])


class TestMeter:
    """Progress is measured in bytes of the files as stored."""

    def test_position_reaches_the_total(self, write):
        """After reading, the meter stands at the sum of the file sizes."""
        paths = [
            str(write("a.jsonl.gz", lines(message(1)), compress=True)),
            str(write("b.jsonl", lines(message(2)))),
        ]
        meter = Meter()
        for path in paths:
            list(read_source(path, meter))
        assert meter.position == total_bytes(paths) == sum(Path(p).stat().st_size for p in paths)

    def test_position_moves_while_reading(self, write):
        """The meter advances during a file, not only at its end."""
        path = write("a.jsonl", lines(*(message(n) for n in range(5000))))
        meter = Meter()
        records = read_source(str(path), meter)
        next(records)
        assert 0 < meter.position < path.stat().st_size
        records.close()

    def test_total_is_unknown_with_stdin(self):
        """Reading stdin, the total size is unknown."""
        assert total_bytes(["-"]) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
MESSAGES = st.lists(
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4).map(
        lambda fields: {**fields, "type": "track"}
    ),
    min_size=1,
    max_size=5,
)


class TestAnyMessages:
    """Whatever the messages hold, every format reads them back unchanged and in order."""

    @settings(max_examples=40, deadline=None)
    @given(
        messages=MESSAGES,
        form=st.sampled_from(["lines", "gzip", "array", "pretty", "envelope", "jq", "spaces"]),
    )
    def test_round_trip(self, tmp_path_factory, messages, form):
        """Messages written in any supported format are read back as written."""
        if form == "lines":
            data = lines(*messages).encode()
        elif form == "gzip":
            data = gzip.compress(lines(*messages).encode())
        elif form == "array":
            data = json.dumps(messages).encode()
        elif form == "pretty":
            data = json.dumps(messages, indent=2).encode()
        elif form == "envelope":
            data = json.dumps({"batch": messages}, indent=1).encode()
        elif form == "jq":
            data = "\n".join(json.dumps(message, indent=2) for message in messages).encode()
        else:
            data = " ".join(json.dumps(message) for message in messages).encode()
        path = tmp_path_factory.mktemp("any") / "input"
        path.write_bytes(data)
        records = list(read_source(str(path)))
        assert [record.error for record in records] == [None] * len(messages)
        assert [record.value for record in records] == messages
