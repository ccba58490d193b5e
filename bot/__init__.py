"""opsbot: the application (config, the engine, access, audit, rendering, and the doors)."""
