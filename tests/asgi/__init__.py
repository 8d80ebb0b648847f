"""Tests of genstore_asgi: the recording middleware, the example service, reliability."""
