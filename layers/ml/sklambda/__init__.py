"""Shared core: model config, data schema, training, artifacts, the S3 model store, prediction."""
