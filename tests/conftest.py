"""Fixtures shared by the test files."""

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch tests run on one thread: two threads on a shared 2-core machine (and beside
    pytest-xdist's second worker) run many times slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
