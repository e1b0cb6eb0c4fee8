"""`python -m api` starts the web process on the configured host and port."""

import sys

import uvicorn

from core.settings import SettingsError, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"bad configuration: {e}", file=sys.stderr)
        return 2
    uvicorn.run(
        "api.main:app", host=settings.server.host, port=settings.server.port, log_level="info"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
