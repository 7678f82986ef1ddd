"""`make demo`: train on the bundled data, publish to a local S3 (moto), promote, serve."""

from __future__ import annotations

import sys
from pathlib import Path

import boto3

from training.cli import main as cli
from training.local.s3server import create_bucket, moto_server, use_endpoint

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "demo-models"
CONFIG = ROOT / "training" / "configs" / "house_prices.toml"


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(argv: list[str]) -> None:
    code = cli(argv)
    if code:
        sys.exit(code)


def demo() -> int:
    out = ROOT / ".demo" / "house-prices"
    step("starting a local S3 (moto server on 127.0.0.1)")
    with moto_server() as endpoint:
        use_endpoint(endpoint)
        create_bucket(endpoint, BUCKET)
        print(f"S3 endpoint {endpoint}, bucket {BUCKET}")
        step("training the house-price model on training/data/windsor_housing.csv")
        run(["train", "--config", str(CONFIG), "--out", str(out)])
        step("publishing (upload, verify sha256) and promoting to alias 'live'")
        run(["publish", str(out), "--bucket", BUCKET, "--promote"])
        step("the registry")
        run(["show", "--model", "house-prices", "--bucket", BUCKET])
        print()
        s3 = boto3.client("s3", endpoint_url=endpoint)
        for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            print(f"  s3://{BUCKET}/{obj['Key']}  ({obj['Size']:,} bytes)")
        step("done; the local S3 server is stopped")
    return 0


if __name__ == "__main__":
    sys.exit(demo())
