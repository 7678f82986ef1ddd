"""`python -m training`: see training/cli.py."""

import os
import sys

# OpenMP threads that spin while waiting for work (the default) slow scikit-learn's boosting fits
# 10-20x on a busy 2-core machine (one fit: 71 s spinning, 5 s passive). Set before scikit-learn
# loads its OpenMP runtime; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from training.cli import main  # noqa: E402

sys.exit(main())
