"""Run the 10DLC registry simulator standalone until Ctrl+C or SIGTERM:

    python -m registry.csp --port 2778 --api-key KEY --api-secret SECRET [--host H] [--snapshot FILE]
                           [--csp-id SSIM001] [--score-delay 0.05]

The key and secret may come from REGISTRY_SIM_API_KEY and REGISTRY_SIM_API_SECRET instead. It prints its base URL
(with ``--port 0``, the port it got); the API, rules and control API are in ``registry.csp.simulator``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys

from registry.csp.simulator import SimState, start_simulator

DEFAULT_PORT = 2778


async def serve(state: SimState, host: str, port: int) -> None:
    runner, url = await start_simulator(state, host, port)
    print(f"registry simulator on {url}: CSP API {url}/v1, DCA {url}/dca/v1, control {url}/control", flush=True)
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m registry.csp", description="Run the 10DLC registry simulator: "
                                     "The Campaign Registry's CSP API, the DCA and a control API, over HTTP.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="its port, 0: any free one (default: "
                        "%(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("REGISTRY_SIM_API_KEY"),
                        help="the CSP API key it accepts (or REGISTRY_SIM_API_KEY)")
    parser.add_argument("--api-secret", default=os.environ.get("REGISTRY_SIM_API_SECRET"),
                        help="its secret (or REGISTRY_SIM_API_SECRET)")
    parser.add_argument("--csp-id", default="SSIM001", help="the CSP's id in answers and events (default: "
                        "%(default)s)")
    parser.add_argument("--snapshot", default=None, help="a JSON file that keeps its state across restarts")
    parser.add_argument("--score-delay", type=float, default=0.05, help="seconds before a brand's identity "
                        "result (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.api_key or not args.api_secret:
        parser.error("--api-key and --api-secret (or REGISTRY_SIM_API_KEY and REGISTRY_SIM_API_SECRET) are required")
    if not 0 <= args.port < 65536 or args.score_delay < 0:
        parser.error("--port must be 0 to 65535 and --score-delay >= 0")
    try:
        state = SimState(args.api_key, args.api_secret, csp_id=args.csp_id, snapshot_path=args.snapshot,
                         score_delay_s=args.score_delay)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(state, args.host, args.port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"error: {exc}. Another registry simulator (a `make run`?) is listening there: stop it, or choose "
              "another --port.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
