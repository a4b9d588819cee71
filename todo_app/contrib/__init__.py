"""Adapters for web frameworks, each an optional extra (``todo_app[fastapi]``).

The core never imports a web framework: only a module here does, and only when a
host imports it (``from todo_app.contrib.fastapi import tasks_router``).
"""
