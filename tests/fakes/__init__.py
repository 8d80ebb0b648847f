"""Fakes for servers that cannot run here (each module's docstring says what it follows)."""
