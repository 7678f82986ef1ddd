"""Training data in the bucket: every CSV under datasets/<model>/, or one given key."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sklambda.data import Table, parse_csv
from sklambda.errors import DataValidationError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DATASET_PREFIX = "datasets"


def dataset_keys(s3: S3Client, bucket: str, model: str) -> list[str]:
    prefix = f"{DATASET_PREFIX}/{model}/"
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].lower().endswith(".csv")]
    return sorted(keys)


def read_dataset(s3: S3Client, bucket: str, model: str, key: str | None = None) -> Table:
    """One table from one key, or from every CSV under datasets/<model>/ (same header each)."""
    keys = [key] if key else dataset_keys(s3, bucket, model)
    if not keys:
        raise DataValidationError(f"no CSV files under s3://{bucket}/{DATASET_PREFIX}/{model}/")
    tables = [
        parse_csv(s3.get_object(Bucket=bucket, Key=k)["Body"].read(), f"s3://{bucket}/{k}")
        for k in keys
    ]
    if len(tables) == 1:
        return tables[0]
    header = list(tables[0].columns)
    for table in tables[1:]:
        if list(table.columns) != header:
            raise DataValidationError(
                f"{table.source} has columns {list(table.columns)}, but {tables[0].source} has "
                f"{header}; every CSV under one dataset needs the same header"
            )
    columns: dict[str, list[Any]] = {name: [] for name in header}
    for table in tables:
        for name in header:
            columns[name] += table.columns[name]
    digest = hashlib.sha256("".join(t.sha256 for t in tables).encode()).hexdigest()
    source = f"s3://{bucket}/{DATASET_PREFIX}/{model}/ ({len(tables)} files)"
    return Table(columns, sum(t.rows for t in tables), source, digest)
