"""Search spaces, one module each."""
