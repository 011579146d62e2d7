"""An evaluation of an endpoint whose server has AITK_API_KEY set, from a client without the key (or with
another one), is one message that names the key and where it comes from (issue 20, item 7): before, it
was gradio_client's "credentials were not provided" and a pointer to `aitk status`, which shows a replica
that runs."""
import pytest

from aitk_nb.cli import main
from aitk_nb.errors import EvalError
from aitk_nb.evaluation import evaluate

pytestmark = pytest.mark.slow


def test_eval_without_the_key_names_the_key_and_where_it_comes_from(server, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("AITK_API_KEY", raising=False)
    with pytest.raises(EvalError) as e:
        evaluate(["What is 2+2?"], endpoint=server.url, variants="base", progress=False)
    assert str(e.value).startswith(f"{server.url} requires an API key (HTTP 401: its server has AITK_API_KEY set) "
                                   "and none was sent; set AITK_API_KEY in this environment to the server's key")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is 2+2?\n")
    assert main(["eval", str(prompts), "--endpoint", server.url, "--variants", "base"]) == 1
    err = capsys.readouterr().err
    assert "requires an API key" in err and "AITK_API_KEY" in err and "credentials were not provided" not in err


def test_eval_with_another_key_says_the_key_was_refused(server, monkeypatch):
    monkeypatch.setenv("AITK_API_KEY", "not-" + server.key)
    with pytest.raises(EvalError, match=r"refused the API key sent \(HTTP 401: it is not its server's AITK_API_KEY\)"):
        evaluate(["What is 2+2?"], endpoint=server.url, variants="base", progress=False)
    monkeypatch.setenv("AITK_API_KEY", server.key)  # the right key: answered
    report = evaluate(["What is 2+2?"], endpoint=server.url, variants="base", max_new_tokens=4, progress=False)
    assert report.rows[0].answer and report.rows[0].error is None
