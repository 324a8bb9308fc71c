"""A file whose first lines are not JSON is still read value by value, never whole.

Each head below is followed by many JSON Lines; the first good message must come
out after only a little of the file was read, plain or gzipped.
"""

from __future__ import annotations

import gzip
import json

import pytest

from segment_braze._replay.inputs import read_source

_MESSAGES = 40_000  # about 4 MB of JSON Lines, 200 kB gzipped

HEADS = {
    "plain text": b"segment export log\nstarted at 12:00\n",
    "bracketed log": b"[INFO] export started\n[WARN] slow disk\n",
    "unclosed bracket": b"[INFO export started\n",
    "unclosed brace": b"{ not json\n",
    "opens a value": b"messages: [\n",
    "csv header": b"type,event,userId\ntrack,Played,u-1\n",
    "binary": bytes(range(256)) * 4 + b"\n",
    "string left open": b'"export\n',
}


def _body():
    return b"".join(
        json.dumps(
            {"type": "track", "event": "E", "userId": f"u-{n}", "messageId": f"m-{n}"}
        ).encode()
        + b"\n"
        for n in range(_MESSAGES)
    )


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_first_message_comes_before_the_file_is_read(tmp_path, head, compress):
    """The first good message is yielded after at most a tenth of the file was read."""
    data = HEADS[head] + _body()
    path = tmp_path / "input.jsonl"
    path.write_bytes(gzip.compress(data) if compress else data)
    size = path.stat().st_size
    reader = read_source(str(path))
    good = 0
    for record in reader:
        if record.error is None:
            good = 1
            break
    frame = reader.gi_frame
    assert frame is not None, "the whole file was read before the first message"
    read = frame.f_locals["raw"].tell()  # the file read_source opened: how far it got
    assert read * 10 <= size, (head, read, size)
    good += sum(1 for record in reader if record.error is None)
    # A head that opens a value ("messages: [") takes the first line with it.
    assert good >= _MESSAGES - 1
