"""Every test module here runs the network on one torch thread (see the root conftest)."""

import pytest

from tests.support.jupyter_lab import jupyter_lab_server


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread(torch_single_thread):
    yield


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """(base url, notebook folder) of a JupyterLab server on 127.0.0.1, for one test module."""
    with jupyter_lab_server(tmp_path_factory.mktemp("lab")) as lab:
        yield lab
