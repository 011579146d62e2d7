"""Shared by the test folders (imported as `helpers`: tests/ is on sys.path via its conftest)."""
import shutil
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A small stand-in for the inference app, for tests about the replica rather than the model: it serves
# /live at once and /health after STANDIN_DELAY seconds, on the HOST and PORT the target gives it.
STANDIN = '''
import http.server, os, sys, time
ready_at = time.monotonic() + float(os.environ.get("STANDIN_DELAY", "0.5"))

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/live" or (self.path == "/health" and time.monotonic() >= ready_at)
        body = b'{"status": "ok", "model": "standin", "adapters": [], "variants": ["base"]}' if ok else b"{}"
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        print("request", self.path, flush=True)

print("stand-in listening", flush=True)
http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Terminate a server process, killing it if it does not exit in `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def notebook_project(tmp_path: Path) -> Path:
    """A project folder with the repository's infra/provision and notebooks/."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    return root


def execute_notebook(root: Path, artifact: str):
    """Run notebooks/remote_inference.ipynb of `root` in a real kernel (nbclient), cwd the notebook's
    folder; the executed notebook is saved as test-artifacts/<artifact> whatever happens."""
    import nbformat
    from nbclient import NotebookClient

    path = root / "notebooks/remote_inference.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:
        (REPO / "test-artifacts").mkdir(exist_ok=True)
        nbformat.write(nb, REPO / "test-artifacts" / artifact)
    return nb


def outputs(cell) -> str:
    """A notebook cell's outputs as one text: streams, plain and HTML data, errors."""
    text = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text.append(out["text"])
        elif "data" in out:
            text.append(out["data"].get("text/plain", ""))
            text.append(out["data"].get("text/html", ""))
        elif out.get("output_type") == "error":
            text.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(text)


def tagged(nb, tag):
    return next(c for c in nb.cells if tag in c.get("metadata", {}).get("tags", []))


def keep_replicas_up(project: Path, n: int = 1) -> None:
    """The project's template keeps `n` replicas of its app up while idle, as AI Toolkit's own inference
    template does (`minReplicas: 1`)."""
    import json

    path = project / "infra" / "provision" / "inference.json"
    template = json.loads(path.read_text())
    app = next(r for r in template["resources"] if r["type"] == "Microsoft.App/containerApps")
    app["properties"]["template"]["scale"]["minReplicas"] = n
    path.write_text(json.dumps(template, indent=2))


def app_folder(project: Path) -> str:
    """The provisioned app's own folder on the share (`inference_app.contract.app_dir`), read from the
    project's infra/inference.config.json."""
    import json

    from inference_app.contract import app_dir

    return app_dir(json.loads((project / "infra" / "inference.config.json").read_text())["ACA_APP_NAME"])


class Traffic:
    """Clients asking `models` over and over in threads while a test changes the server (issue 17: no request
    may fail); `request(client, model)` sends one. Every failed request is kept in `failures`."""

    def __init__(self, request, models: list[str]):
        import threading

        self.request, self.failures, self.done = request, [], 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(m,), daemon=True) for m in models]

    def _run(self, model: str) -> None:
        import httpx

        with httpx.Client() as client:
            for _ in range(2000):  # bounded
                if self._stop.is_set():
                    return
                try:
                    r = self.request(client, model)
                    if r.status_code != 200:
                        self.failures.append(f"{model}: HTTP {r.status_code} {r.text[:200]}")
                except httpx.HTTPError as e:
                    self.failures.append(f"{model}: {type(e).__name__}: {e}")
                self.done += 1

    def __enter__(self) -> "Traffic":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def as_if_trained_on_another_model(adapter: Path) -> None:
    """Make the adapter folder what a fine-tune of another base model leaves: its config names that model,
    and its LoRA A matrices take another hidden size (the served model's weights do not fit them)."""
    import json

    from safetensors.torch import load_file, save_file

    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": "org/another-model"}))
    weights = load_file(adapter / "adapter_model.safetensors")
    save_file({k: (v[:, :-64].contiguous() if "lora_A" in k else v) for k, v in weights.items()},
              adapter / "adapter_model.safetensors")
