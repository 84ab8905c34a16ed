"""The garbage collector in a long-running process.

Everything a process builds at start-up (modules, mappers, settings, clients) lives as long
as the process, yet every full collection walks it again. A sync allocates objects by the
hundred thousand, so collections run often: walking the start-up heap each time cost about
a quarter of a sync's CPU. `settle()` (once start-up is done) moves what is alive into the
collector's permanent generation (`gc.freeze`), so collections look only at what the work
itself allocates.
"""

from __future__ import annotations

import gc


def settle() -> None:
    gc.collect()
    gc.freeze()
