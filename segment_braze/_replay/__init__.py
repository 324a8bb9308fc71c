"""The ``segment-braze`` command: inputs, archive formats, the replay state and the run.

Holds the command line (``cli``, ``config``, ``commands``, ``usage``), the
inputs and their formats (``inputs``, ``layout`` for Segment's S3 layout,
``stream`` for the values in a stream of lines, ``records``), the resumable
state and Segment's duplicate rule (``identity``, ``claims``, ``state``,
``statefile``), the path from records to the sender (``feed``, ``pipeline``,
``processes``), the other files a run keeps (``deadletter``, ``cachefile``), and
what the user sees (``tally``, ``progress``, ``summary``).

The top of the data path: may import every other room except ``testing``.
Nothing imports it but ``segment_braze.__main__``.
"""
