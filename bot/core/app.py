"""Everything one opsbot process needs, built once from settings: config, database, engine."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import OpsConfig, load_config
from bot.config.redact import Redactor
from bot.config.settings import Settings
from bot.core.backends import RealBackends
from bot.core.config_history import record_config
from bot.core.db import Database
from bot.core.engine import Engine
from commands.base import Backends


@dataclass
class App:
    """The process's parts, wired together."""

    settings: Settings
    config: OpsConfig
    db: Database
    redactor: Redactor
    backends: Backends
    engine: Engine

    @classmethod
    def build(cls, settings: Settings, *, backends: Backends | None = None) -> App:
        """Load the config (raises ``ConfigError``) and open the database."""
        config = load_config(settings.opsbot_config)
        redactor = Redactor(settings.secrets())
        db = Database(settings.opsbot_db)
        db.run_sync(lambda _db: None)  # open and migrate now, so a bad path fails at once
        record_config(db, config, settings.opsbot_config)  # the guide's Document History
        real: Backends = backends if backends is not None else RealBackends(config)
        engine = Engine(config, real, db, redactor)
        return cls(settings=settings, config=config, db=db, redactor=redactor, backends=real, engine=engine)

    async def close(self) -> None:
        """Close adapters and the database."""
        close = getattr(self.backends, "close", None)
        if close is not None:
            await close()
        self.db.close()
