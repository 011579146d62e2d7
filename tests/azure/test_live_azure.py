"""Against a real Azure subscription: run when AZURE_SUBSCRIPTION_ID and credentials that
DefaultAzureCredential accepts are present (and the network reaches Azure); skipped otherwise.
AITK_LIVE_RESOURCE_GROUP names an existing group to preview into (default: aitk-nb-live).

They only read and preview (what-if): nothing is created, so they cost nothing."""
import os
import shutil

import pytest

import aitk_nb
from helpers import REPO

SUBSCRIPTION = os.environ.get("AZURE_SUBSCRIPTION_ID")
CREDENTIALS = any(os.environ.get(k) for k in ("AZURE_CLIENT_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")) or \
    shutil.which("az") is not None
pytestmark = pytest.mark.skipif(not (SUBSCRIPTION and CREDENTIALS) or os.environ.get("AITK_ARM_ENDPOINT"),
                                reason="live Azure tests need AZURE_SUBSCRIPTION_ID and credentials (az login, a "
                                       "service principal or a managed identity); none here")


def test_the_account_lists_its_subscription_and_regions():
    from aitk_nb.azure.choices import AccountChoices

    choices = AccountChoices()
    assert SUBSCRIPTION in [sid for _, sid in choices.subscriptions()]
    assert choices.locations(SUBSCRIPTION)


def test_what_if_previews_the_template_without_changing_anything(tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    group = os.environ.get("AITK_LIVE_RESOURCE_GROUP", "aitk-nb-live")
    result = aitk_nb.provision("azure", project=root, subscription=SUBSCRIPTION, resource_group=group, what_if=True,
                               progress=False)
    assert result.what_if and result.changes
    assert not (root / "infra/inference.config.json").exists()
