"""``guard serve``: an OpenAI-compatible HTTP gateway that puts a policy in front of a model server.

- ``server``: the options, building the parts, running under uvicorn and stopping cleanly;
- ``app``: the Starlette application: routes, callers, limits, completions through ``guard.pipeline.aio``;
- ``protocol``: the OpenAI wire format: requests read and checked; responses, stream chunks and errors written;
- ``backends``: where text comes from: an OpenAI-compatible server over HTTP (httpx2), or a local model;
- ``callers``: the callers' API keys, kept as hashes.

Starlette, uvicorn and httpx2 are the ``serve`` extra; nothing here is imported until ``guard serve`` runs.
"""
