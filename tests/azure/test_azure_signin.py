"""Not signed in, or signed in with a token that has expired: every verb, in a terminal and in a notebook,
answers with one line that names the fix, and nothing else: no traceback, no azure-identity report of
every credential it tried (issue 10, item 6)."""
import json
import logging
import os
import re
import subprocess
import sys

import pytest
from azure.core.credentials import AccessToken
from IPython.core.error import UsageError

import aitk_nb
from helpers import REPO

pytestmark = pytest.mark.timeout(300)

NO_CREDENTIAL = ("not signed in to Azure (DefaultAzureCredential failed to retrieve a token from the included "
                 "credentials.); sign in with `az login` (a service principal: set AZURE_CLIENT_ID, AZURE_TENANT_ID "
                 "and AZURE_CLIENT_SECRET; the Python API: credential=)")
SUB = "3b2c7a3e-0000-4000-8000-000000000001"

VERBS = [  # (the verb as typed, what it takes after it); each needs Azure before anything else
    ("provision", ["--target", "azure", "--subscription", SUB, "--resource-group", "rg-aitk", "--what-if"]),
    ("provision", ["--target", "azure", "--subscription", SUB, "--resource-group", "rg-aitk", "--location", "eastus"]),
    ("deploy", ["--model", "org/base"]),
    ("status", []),
    ("endpoint", []),
    ("logs", ["--tail", "5"]),
    ("logs", ["--follow"]),
    ("scale", ["--min", "0"]),
    ("teardown", ["--app-only", "--yes"]),
    ("teardown", ["--yes"]),
    ("eval", ["prompts.txt"]),
]


@pytest.fixture
def azure_project(project):
    """A project whose hand-filled inference.config.json names an app on the azure target."""
    (project / "infra/inference.config.json").write_text(json.dumps({
        "SUBSCRIPTION_ID": SUB, "RESOURCE_GROUP_NAME": "rg-aitk", "STORAGE_ACCOUNT_NAME": "aitkstore0001",
        "FILE_SHARE_NAME": "aitk-inference", "ACA_APP_NAME": "aitk-app", "ACA_APP_ENDPOINT": "https://127.0.0.1:9",
        "TARGET": "azure"}))
    (project / "prompts.txt").write_text("What is 2+2?\n")
    return project


def test_every_cli_verb_without_a_sign_in_says_so_in_one_line(azure_double, azure_project, tmp_path):
    # Azure is reachable (the double), but no credential is: no az login, no service principal, no managed
    # identity (its probe kept on loopback), an empty home
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env.update(HOME=str(tmp_path), AITK_ARM_ENDPOINT=azure_double.arm_endpoint, AITK_CA_BUNDLE=azure_double.ca_bundle,
               AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:9")
    runs = [(verb, rest, subprocess.Popen([sys.executable, "-m", "aitk_nb.cli", verb, *rest], cwd=azure_project, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for verb, rest in VERBS]  # side by side: each spends its time importing the SDK and asking credentials
    for verb, rest, proc in runs:
        _, err = proc.communicate(timeout=120)
        assert (proc.returncode, err) == (1, f"aitk {verb}: error: {NO_CREDENTIAL}\n"), (verb, rest)
    assert not (azure_project / ".aitk").exists()


class Expired:
    """A credential that keeps handing out the token it got before Azure began refusing it as expired
    (what a kernel that has run for a while holds)."""

    def __init__(self, double):
        self.value = double.credential.get_token("https://management.azure.com/.default").token
        double.access.expire_tokens()

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.value, 4102444800)


def identity_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("azure.identity") and r.levelno >= logging.WARNING]


def test_every_magic_with_an_expired_sign_in_says_so_in_one_line(azure, azure_project, shell, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(azure_project)
    aitk_nb.set_credential(Expired(azure))
    try:
        for verb, rest in VERBS:
            line = " ".join([verb, *rest[:-1]] if verb == "eval" else [verb, *rest])
            with pytest.raises(UsageError) as e:
                if verb == "eval":
                    shell.run_cell_magic("aitk", line, "What is 2+2?")
                else:
                    shell.run_line_magic("aitk", line)
            assert type(e.value) is UsageError, line
            # the reason from the error body, or from the challenge (a HEAD, such as an existence check, has no body)
            assert re.fullmatch(r"Azure refused the sign-in \((ExpiredAuthenticationToken: The access token expiry UTC "
                                r"time '[^']+' is earlier than current UTC time '[^']+'\.|invalid_token: The access token "
                                r"has expired\.)\); sign in again with `az login` \(a service principal: set "
                                r"AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET; the Python API: credential=\)",
                                str(e.value)), (line, str(e.value))
    finally:
        aitk_nb.set_credential(None)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Attempted credentials" not in err
    assert not identity_warnings(caplog)  # pytest takes log records from stderr: look at them there


def test_the_python_api_without_a_sign_in_prints_nothing_of_its_own(azure_double, azure_project, tmp_path, monkeypatch,
                                                                     capsys, caplog):
    caplog.set_level(logging.DEBUG)
    for key in [k for k in os.environ if k.startswith(("AZURE_", "IDENTITY_", "MSI_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AITK_ARM_ENDPOINT", azure_double.arm_endpoint)
    monkeypatch.setenv("AITK_CA_BUNDLE", azure_double.ca_bundle)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
    with pytest.raises(aitk_nb.AitkError, match=r"^not signed in to Azure \(DefaultAzureCredential failed"):
        aitk_nb.status(project=azure_project)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""  # azure-identity's warning is not printed: the error says it
    assert not identity_warnings(caplog)  # (pytest's log capture would hide it from capsys: checked here)


class Answer:
    """A management client's raw response, as the hook gets it."""

    def __init__(self, status, challenge, body=b""):
        self.http_response = self
        self.status_code, self.headers, self._body = status, {"WWW-Authenticate": challenge}, body

    def read(self):
        return self._body

    def json(self):
        return json.loads(self._body) if self._body else {}


def test_a_claims_challenge_is_left_to_the_sdk_and_an_expired_token_is_one_line():
    """Continuous access evaluation answers 401 with a claims challenge that azure-core's authentication
    policy meets with a new token; the hook, which sees the response first, must not turn it into an error."""
    from aitk_nb.azure.signin import refused_sign_in

    claims = ('Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
              'error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZX19fQ=="')
    assert refused_sign_in(Answer(401, claims)) is None
    with pytest.raises(aitk_nb.AitkError, match=r"^Azure refused the sign-in \(invalid_token: The access token has expired\.\)"):
        refused_sign_in(Answer(401, 'Bearer error="invalid_token", error_description="The access token has expired."'))
