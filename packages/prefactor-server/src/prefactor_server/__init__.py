"""prefactor_server: a local Prefactor-compatible API server, its storage and the ``prefactor`` CLI.

Example::

    from prefactor_server import Settings, create_app

    app = create_app(Settings(db_path="prefactor.db", api_token="dev-token-123"))
"""

from prefactor_server._version import __version__
from prefactor_server.app import create_app
from prefactor_server.settings import Settings

__all__ = ["Settings", "__version__", "create_app"]
