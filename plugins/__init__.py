"""Built-in plugins: one module per capability, registered like third-party ones."""
