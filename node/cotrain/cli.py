"""The `cotrain` command line. The node roles arrive as subcommands; this is the entry point they hang on."""

import typer

from cotrain import __version__

app = typer.Typer(
    name="cotrain",
    help="Train one model with many parties; rewards and aggregation are checked on-chain.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cotrain {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Train one model with many parties; rewards and aggregation are checked on-chain."""
