"""End-to-end tests: real HTTP requests to the local API on 127.0.0.1."""
