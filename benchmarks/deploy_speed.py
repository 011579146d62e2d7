"""Deploy speed against the Azure test double, with a per-request latency added to every call (as a
round trip to an Azure region would): the toolkit's real sync engine and Azure Files remote, the real
azure-storage-file-share client, real HTTPS on loopback. The double runs in its own process (as Azure
is not in the client's interpreter); bytes uploaded are counted by the double.

    .venv/bin/python benchmarks/deploy_speed.py [--latency 0.05] [--size-mb 500] [--files 200]

Prints, side by side in one run:
  - a no-op redeploy of a folder of N small files: bytes uploaded (target 0) and time;
  - one changed file among N: bytes uploaded (target: that file only);
  - a large folder (5 files, --size-mb in all): parallel chunked uploads (4 files x 4 ranges in
    flight) against one sequential stream (1 file, 1 range at a time); target >= 3x faster.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aitk_nb import sync  # noqa: E402
from aitk_nb.azure.files import CHUNK_CONCURRENCY, AzureFilesRemote, share_client  # noqa: E402
from aitk_nb.azure.session import AzureSession  # noqa: E402


class DoubleProcess:
    """`python -m azure_double` in a subprocess, provisioned, with the latency set."""

    def __init__(self, latency: float):
        env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
        self.proc = subprocess.Popen([sys.executable, "-m", "azure_double", "--latency", str(latency),
                                      "--provision", "rg-bench"], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.environment, self.outputs = info["environment"], info["outputs"]
        self.subscription_id = info["subscription_id"]

    def uploaded_bytes(self) -> int:
        import ssl
        import urllib.request

        ctx = ssl.create_default_context(cafile=self.environment["AITK_CA_BUNDLE"])
        url = self.environment["AITK_ARM_ENDPOINT"] + "/_double/stats"
        with urllib.request.urlopen(url, context=ctx) as r:
            return json.loads(r.read())["uploaded_bytes"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def make_folder(root: Path, files: int, size: int) -> Path:
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"part-{i:03d}.bin").write_bytes(os.urandom(size))
    return root


def timed_sync(double: DoubleProcess, remote: AzureFilesRemote, source: Path, dest: str, workers: int) -> tuple[float, int]:
    before = double.uploaded_bytes()
    t0 = time.perf_counter()
    sync.sync(source, remote, dest, workers=workers, progress=False)
    return time.perf_counter() - t0, double.uploaded_bytes() - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added to every request (default 0.05)")
    ap.add_argument("--size-mb", type=int, default=500, help="size of the large folder (default 500)")
    ap.add_argument("--files", type=int, default=200, help="small files in the many-files folder (default 200)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        double = DoubleProcess(args.latency)
        try:
            out = double.outputs
            os.environ.update(double.environment)  # the real DefaultAzureCredential, via its identity endpoint
            session = AzureSession(double.subscription_id)
            share = share_client(session, out["RESOURCE_GROUP_NAME"], out["STORAGE_ACCOUNT_NAME"], out["FILE_SHARE_NAME"])
            print(f"Azure test double in its own process, loopback HTTPS, {args.latency * 1000:.0f} ms added per request\n")

            many = make_folder(tmp / "many", args.files, 16 * 1024)
            parallel = AzureFilesRemote(share)
            first, first_bytes = timed_sync(double, parallel, many, "bench/many", workers=4)
            noop, noop_bytes = timed_sync(double, parallel, many, "bench/many", workers=4)
            (many / "part-007.bin").write_bytes(os.urandom(16 * 1024))
            one, one_bytes = timed_sync(double, parallel, many, "bench/many", workers=4)
            print(f"{args.files} files of 16 KiB:")
            print(f"  first deploy        {first:7.2f} s  {first_bytes:>12,} bytes uploaded")
            print(f"  no-op redeploy      {noop:7.2f} s  {noop_bytes:>12,} bytes uploaded")
            print(f"  one file changed    {one:7.2f} s  {one_bytes:>12,} bytes uploaded (the file: {16 * 1024:,})\n")

            big = make_folder(tmp / "big", 5, args.size_mb * 2**20 // 5)
            sync.scan(big)  # the local MD5s, which every deploy computes once: not part of either upload's time
            sequential = AzureFilesRemote(share, chunk_concurrency=1)
            seq, seq_bytes = timed_sync(double, sequential, big, "bench/big-sequential", workers=1)
            par, par_bytes = timed_sync(double, parallel, big, "bench/big-parallel", workers=4)
            mb = args.size_mb
            print(f"{mb} MB folder (5 files):")
            print(f"  one sequential stream              {seq:7.2f} s  {seq_bytes / 2**20 / seq:7.1f} MiB/s")
            print(f"  parallel chunked (4 files x {CHUNK_CONCURRENCY} ranges) {par:7.2f} s  {par_bytes / 2**20 / par:7.1f} MiB/s")
            print(f"  ratio: parallel is {seq / par:.2f}x faster (target >= 3x)")
        finally:
            double.close()


if __name__ == "__main__":
    main()
