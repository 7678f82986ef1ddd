"""Local, Docker-free tooling: a moto S3 server, the local API runner and the demo."""
