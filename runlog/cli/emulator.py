"""`runlog emulator`: serve the local HealthOmics emulator."""

from __future__ import annotations

import click


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=4566, show_default=True,
              help="TCP port on the host (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="How fast the emulator's clock runs (runs take 50 s at 1.0; 0 freezes it).")
@click.option("--s3-endpoint-url", help="Answer resourceDigests with real ETags from this S3 endpoint.")
@click.option("--first-batch-id", type=click.IntRange(1, 10**18 - 1), metavar="N",
              help="The first batch's id (then N+1, ...). Default: a random 7-digit number from 8100001, "
                   "so that a restarted emulator does not give a ledger's batch ids again.")
def emulator(port, host, speed, s3_endpoint_url, first_batch_id):
    """Serve the local HealthOmics emulator until interrupted.

    It speaks the HealthOmics REST-JSON protocol (and STS GetCallerIdentity), so the aws
    CLI, boto3 and runlog all work against it with dummy credentials. Runs go PENDING ->
    STARTING -> RUNNING -> COMPLETED over 50 seconds of emulator time. See docs/emulator.md.

    \b
    Examples:
      runlog emulator --port 4566
      export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_DISABLE_HOST_PREFIX_INJECTION=true \\
             AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator AWS_DEFAULT_REGION=us-west-2
      aws omics get-workflow --id 1234567
    """
    from runlog.emulator import Emulator

    emu = Emulator(port=port, host=host, clock=speed, s3_endpoint_url=s3_endpoint_url,
                   first_batch_id=first_batch_id)
    try:
        emu.bind()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror} (try --port 0)") from None
    url = emu.endpoint_url
    click.echo(f"HealthOmics emulator on {url} (Ctrl-C stops it); to use it: export AWS_ENDPOINT_URL={url} "
               "AWS_DISABLE_HOST_PREFIX_INJECTION=true AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator "
               "AWS_DEFAULT_REGION=us-west-2")
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
