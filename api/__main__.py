"""`python -m api` starts the web process on the configured host and port."""

import argparse
import sys

import uvicorn

from api.app import access_policy
from api.connections import bound_connections
from api.metrics import share_between_workers
from core.logs import log_config
from core.secrets import load_api_keys
from core.settings import SettingsError, load_settings_or_exit


def check_access(settings) -> None:
    """Fail like a bad setting (exit 2, naming it) before uvicorn imports the app."""
    try:
        access_policy(settings, load_api_keys())
    except SettingsError as e:
        print(f"bad configuration: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def parse_args(argv) -> None:
    """No options: settings come from config.toml and BANDIT_* variables. --help (or any
    argument) must never start a server."""
    parser = argparse.ArgumentParser(
        prog="python -m api",
        description="Start the web process on server.host:server.port (see config.toml).",
    )
    parser.parse_args(argv)


def main(argv=None) -> int:
    parse_args(argv)
    settings = load_settings_or_exit()
    check_access(settings)
    server = settings.server
    share_between_workers(server.workers)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=server.host,
        port=server.port,
        log_level="info",
        **bound_connections(server),
        workers=server.workers,
        access_log=server.access_log,
        log_config=log_config(server.log_format),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
