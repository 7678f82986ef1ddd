"""`python -m training`: see training/cli.py."""

import os
import sys

# OpenMP threads that spin while waiting for work (the default) slow scikit-learn's boosting fits
# on a busy machine: 13.9 s against 5.6 s passive for one fit on 2 shared cores (median of 5
# pairs). Set before scikit-learn loads its OpenMP runtime; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from training.cli import main  # noqa: E402

sys.exit(main())
