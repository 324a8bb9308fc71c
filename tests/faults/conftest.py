"""Every fault test runs over both transports: the lean default and ``requests``.

The sender's fault tests also run with ``processes=2`` (the ``processes``
fixture): the children's bundles must keep every guarantee one process keeps.
"""

from __future__ import annotations

import pytest

from . import support


@pytest.fixture(autouse=True, params=support.TRANSPORTS)
def transport(request):
    """The transport ``support.send`` and ``support.client_options`` build clients with."""
    support.transport = request.param
    yield request.param
    support.transport = support.TRANSPORTS[0]


@pytest.fixture(params=(1, 2), ids=("one-process", "two-processes"))
def processes(request):
    """``processes`` for the clients ``support.send`` and ``support.client_options`` build."""
    support.processes = request.param
    yield request.param
    support.processes = 1
