#!/usr/bin/env python3
"""The benchmark client's own ceiling: api_bench.py's create loop (same
threads, connections, payloads and JSON) against a request every daemon
refuses at once, before its store (a secret with no name: 400). Whatever the
server, api_bench.py cannot report more creates/s than this, nor a lower p50.

  client_ceiling.py --host tcp://127.0.0.1:2375 --conc 8 [--n 3000]
Prints one JSON line.
"""
import argparse, base64, json, os, sys, threading, time



def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--bench", default=os.path.join(here, "../../../../shared/bench/api_bench.py"))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--conc", type=int, default=8)
    ap.add_argument("--size", type=int, default=1024)
    a = ap.parse_args()
    # The client's own connection and request code, not a copy of it.
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.bench)))
    import api_bench
    lat, lock, statuses = [], threading.Lock(), set()

    def worker(k):
        c = api_bench.conn(a.host)
        for i in range(k, a.n, a.conc):
            payload = base64.b64encode(os.urandom(a.size)).decode()
            t0 = time.perf_counter()
            st, _ = api_bench.req(c, "POST", "/v1.41/secrets/create", {"Data": payload, "Labels": {"bench": "1"}})
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)
                statuses.add(st)

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(a.conc)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    wall = time.perf_counter() - t0
    lat.sort()
    print(json.dumps({"host": a.host, "conc": a.conc, "statuses": sorted(statuses),
                      "ceiling_ops_s": round(len(lat) / wall, 1),
                      "floor_p50_ms": round(lat[len(lat) // 2] * 1e3, 2)}))


if __name__ == "__main__":
    main()
