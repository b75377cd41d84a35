"""How loopml's processes share the machine's cores: OpenMP's idle threads sleep.

torch (and any library built on GNU OpenMP) keeps one thread per core and, by default, has
idle threads spin at every barrier. When two such processes run at once (two search workers'
MLP trials, a trial beside a refit, a test worker beside a stack), every barrier waits for a
thread the kernel has descheduled: two MLP fits started together beside a busy process took
16.2 s each against 6.8 s with OMP_WAIT_POLICY=PASSIVE, a distillation step 2.6 s against
0.67 s (`benchmarks/shared_cores.py`). With it waiting threads sleep; alone on the machine
the same work is as fast as before (4.9 and 4.3 s, 0.27 and 0.31 s). The
variable is read once, when the OpenMP runtime loads, so it goes into the environment of
every process loopml starts rather than being set from Python later.
"""

from __future__ import annotations

from collections.abc import Mapping

OMP_WAIT_POLICY = "OMP_WAIT_POLICY"
PASSIVE = "PASSIVE"


def shared_cores_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables for a child process that shares the cores: passive OpenMP waiting, unless
    the user chose a policy themselves (kept as given)."""
    return {OMP_WAIT_POLICY: environ.get(OMP_WAIT_POLICY, PASSIVE)}
