"""The tiny generated benchmark every training test trains on (once per test module)."""

import pytest

from bgbias.data.generate import generate_benchmark
from tests.helpers import TINY


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "g"
    generate_benchmark(root, TINY)
    return root
