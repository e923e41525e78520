"""kemm: knowledge-enhanced multimodal cancer survival prediction."""

import os

# OpenMP threads that spin while waiting stall every small op when the CPU is shared (measured
# here: a KEMM step 10x slower). Passive waiting costs nothing on an idle machine. Must be set
# before torch loads its OpenMP runtime; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
