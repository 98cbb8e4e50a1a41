"""The admin: staff browse the event store and the read side; they act only through commands."""

from entrypoints.admin import event_store, read_model

__all__ = ["event_store", "read_model"]
