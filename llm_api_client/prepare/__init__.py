"""Coordinator-side preparation: what happens to a request before any worker sees it.

``request.prepare_request`` is the entry point (validate -> sanitize -> fit -> count); the
pieces it composes:

- ``sanitize``: drop the OpenAI parameters the model does not accept;
- ``truncate``: fit the conversation into the model's context window;
- ``chat_tokens``: count a chat request's prompt tokens with tiktoken.
"""
