"""`python -m api` starts the web process on the configured host and port."""

import sys

import uvicorn

from core.settings import load_settings_or_exit


def main() -> int:
    settings = load_settings_or_exit()
    uvicorn.run(
        "api.main:app", host=settings.server.host, port=settings.server.port, log_level="info"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
