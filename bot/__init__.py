"""opsbot, the application: doors/ and slack/ (how requests come in), render/, core/ (the one path), config/.

Layers, top to bottom (pyproject.toml's import-linter contracts): doors -> slack -> render -> core ->
commands -> config -> adapters; a module imports only from its own layer and those below it.
"""
