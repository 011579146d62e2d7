"""pytest fixture: `azure_double` (function scope). Import it in a conftest:
`from azure_double.fixtures import azure_double  # noqa: F401`."""
from __future__ import annotations

import pytest

from .double import AzureDouble


@pytest.fixture
def azure_double(tmp_path):
    double = AzureDouble(tmp_path / "azure-double")
    try:
        yield double
    finally:
        double.close()
