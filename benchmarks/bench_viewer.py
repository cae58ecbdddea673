"""Viewer speed: from a ``show()`` call to its page served, the model registered.

Target (2 cores): median <= 0.5 s from ``viewer.show(model)`` to the HTTP GET
of the frame's page returning 200 and the GET of the model's path returning its
bytes. "Cold" starts the viewer server each time (the first ``show()`` of a
kernel); "warm" shows another model on the running server.

Run: ``.venv/bin/python benchmarks/bench_viewer.py [--repeats 10]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import urllib.parse
import urllib.request


def show_to_page(model, expected: bytes) -> float:
    """Seconds from ``show(model)`` to its page (200) and its model bytes served."""
    from workbench import viewer

    start = time.perf_counter()
    frame = viewer.show(model, url_mode="direct")
    with urllib.request.urlopen(frame.src, timeout=10) as response:
        page = response.read()
        assert response.status == 200 and b"<title>Netron</title>" in page
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(frame.src).query)
    with urllib.request.urlopen(urllib.parse.urljoin(frame.src, "/" + query["url"][0]), timeout=10) as response:
        assert response.status == 200 and response.read() == expected
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="show() calls to time, each way")
    args = parser.parse_args()

    import workbench as wb
    from workbench import viewer

    models = [wb.convert(wb.lenet(), "float32") for _ in range(args.repeats + 1)]  # real LeNet .tflite bytes
    print(f"cores: {os.cpu_count()}  load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}  "
          f"model: {len(models[0].tflite) / 1024:.0f} KB")
    cold = []
    for model in models[: args.repeats]:
        viewer.stop_all()
        cold.append(show_to_page(model, model.tflite))
    warm = [show_to_page(model, model.tflite) for model in models[1:]]
    viewer.stop_all()
    for name, seconds in (("cold (server started by show)", cold), ("warm (server running)", warm)):
        median = statistics.median(seconds)
        print(f"viewer show() -> page 200 + model bytes, {name}: median {median * 1000:.1f} ms, "
              f"min {min(seconds) * 1000:.1f} ms, max {max(seconds) * 1000:.1f} ms over {len(seconds)} "
              f"[target <= 500 ms: {'met' if median <= 0.5 else 'NOT met'}]")


if __name__ == "__main__":
    main()
