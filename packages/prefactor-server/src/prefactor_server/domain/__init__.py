"""Domain logic: state machines, validation, idempotency, written against the storage protocols."""
