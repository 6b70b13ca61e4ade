"""``python -m recadvisor``: the same entry point as the ``recadvisor`` console script."""

from __future__ import annotations

from recadvisor.cli import main

if __name__ == "__main__":
    main()
