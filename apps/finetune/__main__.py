"""``python -m apps.finetune`` (see `apps.finetune.cli`)."""

import sys

from apps.finetune.cli import main

if __name__ == "__main__":
    sys.exit(main())
