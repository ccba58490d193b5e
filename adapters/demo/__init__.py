"""The demo world: the guide's shop (postgres, redis, api, worker) in-process, for ``opsbot serve --demo``.

No Docker, no database server, no network beyond loopback: the runtime is the contract-tested
``FakeRuntime`` filled with the shop, the health endpoints are served on loopback from its state, the
backups go to a ``FileStore`` in the demo's own directory, and ``DemoDatabase`` plays ``pg_dump`` and
``psql``. The only product package that may import ``adapters.fakes`` (pyproject.toml's import-linter
contract "Fakes are for tests" names this exception). Imports adapters' fakes, stores and HTTP probe.
"""

from adapters.demo.world import DEMO_ENV, DemoBackends, DemoWorld

__all__ = ["DEMO_ENV", "DemoBackends", "DemoWorld"]
