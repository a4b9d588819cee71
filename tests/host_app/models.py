from tortoise import fields
from tortoise.models import Model


class Note(Model):
    """A model of the host's own, on the same connection as todo_app."""

    id = fields.IntField(primary_key=True)
    text = fields.CharField(max_length=100)

    class Meta:
        table = "host_note"
