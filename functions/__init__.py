"""Thin Functions blueprints: read the binding, call shared/, write the output."""
