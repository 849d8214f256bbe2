"""``matchday serve`` and ``matchday worker``: the two processes, the server answering requests and the worker
doing everything else (monitoring, the rollout controller, webhooks, retraining)."""

from __future__ import annotations

from typing import Annotated

import typer

from matchday.cli import render
from matchday.cli.context import default_workspace
from matchday.cli.options import FLAG
from matchday.errors import MatchdayError


def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port, 1 to 65535")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="server processes (each with its own batching and log writer)")
    ] = 1,
    log_level: Annotated[str, typer.Option()] = "info",
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            metavar=FLAG,
            help="start one `matchday worker` beside the server "
            "(monitoring, rollout controller, webhooks); --no-worker when it runs "
            "elsewhere",
        ),
    ] = True,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log", metavar=FLAG, help="log a line per request (off: it costs the request path)"
        ),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", metavar=FLAG, help="listen beyond loopback although no user or token exists (anyone may act)"
        ),
    ] = False,
) -> None:
    """Serve every deployment in the store over HTTP (own JSON, Open Inference Protocol V2, /metrics)."""
    from matchday.serving import check_listen, is_loopback

    check_listen(host, port)  # a taken port is said (with who holds it) before anything starts or prints
    import uvicorn

    from matchday.worker import WorkerSupervisor

    ws = default_workspace()
    ws.database.upgrade()  # once, before the workers start
    if not is_loopback(host) and not ws.access.enforced():
        if not insecure:
            raise MatchdayError(
                f"refusing to listen on {host}: no user or token exists, so anyone who reaches the port could "
                "deploy, roll back and read everything. Create one first (matchday users add NAME --role admin, "
                "or matchday tokens create --role predictor --name ...), set MATCHDAY_AUTH=required, or pass "
                "--insecure to listen anyway"
            )
        import os

        render.err().print(f"[yellow]warning:[/] --insecure: listening on {host} with no credential: anyone may act")
        os.environ.setdefault("MATCHDAY_ALLOWED_HOSTS", "*")
    _ = ws.monitoring  # a monitor that cannot be checked stops here, with every reason, before anything starts
    _ = ws.retrain_policies  # and so does a retraining policy with a bad field
    if workers > 1:  # every worker writes its metrics here; /metrics sums them
        import os
        import shutil

        metrics_dir = (ws.settings.home / f"prometheus-{os.getpid()}").absolute()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    beside = "a worker beside it" if worker else "no worker (--no-worker: run `matchday worker` elsewhere)"
    render.out().print(
        f"serving on http://{host}:{port} ({workers} process{'es' if workers > 1 else ''}, {beside}); "
        "Ctrl-C stops, flushing the prediction log first"
    )
    supervisor = WorkerSupervisor().start() if worker else None
    try:
        uvicorn.run(
            "matchday.server:create_server_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=30,
            access_log=access_log,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()


def worker_command(
    engine: Annotated[
        str | None,
        typer.Option(help="where trainers run: local (a child process) or ray (a Ray task); matchday.yaml's if absent"),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="the Ray cluster for --engine ray (ray.init(address=...)); a local one if absent")
    ] = None,
) -> None:
    """Run the monitoring loop, the rollout controller, the webhook sender and retraining until stopped
    (SIGTERM, Ctrl-C).

    `matchday serve` starts one itself; run this beside `matchday serve --no-worker` replicas (one is enough:
    each loop runs under a leader lock, so more workers stand by).
    """
    import logging
    import os

    from matchday.worker import run_worker

    if engine is not None:
        if engine not in ("local", "ray"):
            raise typer.BadParameter(f"{engine!r}: local or ray", param_hint="--engine")
        os.environ["MATCHDAY_RETRAIN_ENGINE"] = engine  # the settings of this process (and its trainers' children)
    if ray_address is not None:
        os.environ["MATCHDAY_RAY_ADDRESS"] = ray_address
    ws = default_workspace()
    if ws.settings.retrain_engine == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise MatchdayError("--engine ray needs Ray in this environment: pip install 'matchday[ray]'")
    _ = ws.retrain_policies  # a bad retraining policy stops the worker here, with every bad field
    logging.basicConfig(
        level=os.environ.get("MATCHDAY_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    run_worker(ws)
