"""``python -m ultravqa_ray.cli``: the same as the ``ultravqa-ray`` console script."""

import sys

from ultravqa_ray.cli import main

if __name__ == "__main__":
    sys.exit(main())
