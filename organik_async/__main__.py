"""``python -m organik_async``: the ``organik-report`` command, for when the
console script is not on PATH."""

import sys

from organik_async._cli import main

if __name__ == "__main__":
    sys.exit(main())
