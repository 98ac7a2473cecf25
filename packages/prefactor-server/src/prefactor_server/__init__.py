"""prefactor_server."""
