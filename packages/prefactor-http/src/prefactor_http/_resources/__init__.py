"""One module per API resource; each client talks through a ``Requester``."""
