"""Every test module here runs the network on one torch thread (see the root conftest)."""

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread(torch_single_thread):
    yield
