"""prefactor_http."""
