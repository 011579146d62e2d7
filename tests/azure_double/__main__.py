"""Run the Azure test double as its own process, e.g. to try the toolkit by hand or to benchmark
without the double sharing the client's interpreter:

    PYTHONPATH=tests .venv/bin/python -m azure_double [--latency 0.05] [--provision RG] [--finetuning RG]

Prints one JSON line: the environment a toolkit process needs (AITK_ARM_ENDPOINT, AITK_CA_BUNDLE,
IDENTITY_ENDPOINT, IDENTITY_HEADER), the subscription id, with --provision the deployment's outputs
(the inference.config.json keys) and with --finetuning the contents of infra/finetuning.config.json
for a group that a fine-tuning left behind (scenario.finetuning_leftovers). Serves until stdin closes or the process is interrupted;
GET <arm endpoint>/_double/stats reports the bytes uploaded to Azure Files so far."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .double import AzureDouble
from .scenario import finetuning_leftovers, provision


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m azure_double", description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    ap.add_argument("--provision", metavar="RG", help="deploy the repo's template into this resource group first")
    ap.add_argument("--finetuning", metavar="RG", help="make this group hold what a fine-tuning leaves behind")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="azure-double-") as tmp:
        double = AzureDouble(Path(tmp))
        try:
            outputs = provision(double, resource_group=args.provision) if args.provision else None
            finetuning = finetuning_leftovers(double, resource_group=args.finetuning).config() if args.finetuning else None
            double.latency(args.latency)
            print(json.dumps({"environment": double.environment(), "subscription_id": double.subscription_id,
                              "outputs": outputs, "finetuning": finetuning}), flush=True)
            try:
                sys.stdin.read()
            except KeyboardInterrupt:
                pass
        finally:
            double.close()


if __name__ == "__main__":
    main()
