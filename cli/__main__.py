"""``python -m cli``: the ``braid`` command without installing the package."""

from cli import app

app()
