"""prefactor_core."""
