"""Every fault test runs over both transports: the lean default and ``requests``."""

from __future__ import annotations

import pytest

from . import support


@pytest.fixture(autouse=True, params=support.TRANSPORTS)
def transport(request):
    """The transport ``support.send`` and ``support.client_options`` build clients with."""
    support.transport = request.param
    yield request.param
    support.transport = support.TRANSPORTS[0]
