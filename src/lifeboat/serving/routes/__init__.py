"""The HTTP routes, one module per concern; `create_app` includes them all."""
