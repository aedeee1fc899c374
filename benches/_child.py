"""One measurement, in the fresh interpreter ``run.py`` starts for it.

    python benches/_child.py TRACER NFRAME WORKLOAD SCALE

Imports the workload, starts the tracer, times ``run(scale)`` alone with ``perf_counter``, reads
the tracer's figures, stops it and prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import gc
import importlib
import json
import resource
import sys
import time

from _tracers import make_tracer


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    tracer_name, nframe, workload, scale = argv[0], int(argv[1]), argv[2], float(argv[3])
    module = importlib.import_module(f"workloads.{workload}")
    tracer = make_tracer(tracer_name)
    gc.collect()
    tracer.start(nframe)
    started = time.perf_counter()
    checksum = module.run(scale)
    wall = time.perf_counter() - started
    traced = tracer.traced_memory()
    tracer_bytes = tracer.tracer_memory()
    tracer.stop()
    result = {
        "tracer": tracer_name,
        "nframe": nframe,
        "workload": workload,
        "scale": scale,
        "wall_s": wall,
        "checksum": checksum,
        "current_bytes": traced[0] if traced else None,
        "peak_bytes": traced[1] if traced else None,
        "tracer_bytes": tracer_bytes,
        "capture_bytes": getattr(tracer, "capture_bytes", None),
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
