"""The ``segment-braze`` command: inputs, archive formats, the replay state and the run.

Holds the command line (``cli``, ``config``, ``commands``, ``usage``), the
inputs and their formats (``inputs``, ``records``), the resumable state
(``state``), the path from records to the sender (``feed``, ``pipeline``,
``processes``), and what the user sees (``tally``, ``progress``, ``summary``).

The top of the data path: may import every other room except ``testing``.
Nothing imports it but ``segment_braze.__main__``.
"""
