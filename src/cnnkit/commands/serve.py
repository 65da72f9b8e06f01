"""``cnnkit serve``: the interactive CNN explorer in the browser."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from cnnkit.serve import DEFAULT_HOST, DEFAULT_PORT

    parser = subparsers.add_parser(
        "serve",
        help="explore convolutions and a trained network in the browser",
        description=(
            "Start a local web application: a convolution playground (padding, stride, "
            "dilation, pooling, every output element's sum written out), and with a run folder "
            "the network's view of a digit you draw (feature maps, attribution, top classes) "
            "and the run's report. Needs pip install 'cnnkit[serve]'. Example: cnnkit serve "
            "runs/mnist"
        ),
    )
    parser.add_argument("run", nargs="?", metavar="RUN", help="a run folder (optional)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}, this machine only)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.serve import bind, is_loopback, serve
    from cnnkit.serve.app import LOOPBACK_HOSTS, create_app, require_packages

    require_packages()
    listener = bind(args.host, args.port)
    try:
        local = is_loopback(args.host)
        app = create_app(args.run, allowed_hosts=LOOPBACK_HOSTS if local else None)
        if not local:
            print(f"cnnkit serve: warning: listening on {args.host} lets other machines reach "
                  "this server, which has no login; use the default 127.0.0.1 unless you "
                  "trust the network", file=sys.stderr)
        host, port = listener.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        try:
            print(f"cnnkit serve: http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
            serve(app, listener)
        except KeyboardInterrupt:
            pass
    finally:
        listener.close()
    print("cnnkit serve: stopped", file=sys.stderr)
    return 0
