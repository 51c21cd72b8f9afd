"""``aggregator moneyhub jwks``: a key pair for Moneyhub's admin portal and our configuration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from aggregator.upstream.plugin_keys import SIGNING_ALGS, generate_jwks


@click.group("moneyhub")
def moneyhub() -> None:
    """Moneyhub plugin tools."""


@moneyhub.command("jwks")
@click.option("--alg", type=click.Choice(SIGNING_ALGS), default="PS256", show_default=True,
              help="Signing algorithm: request objects and private_key_jwt assertions.")
@click.option("--rsa-bits", type=click.IntRange(min=2048), default=2048, show_default=True,
              help="RSA key size (RS*/PS* only).")
@click.option("--private-out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              default=None,
              help="Write the private JWKS to this file (mode 0600) and print only the public one.")
def jwks_command(alg: str, rsa_bits: int, private_out: Path | None) -> None:
    """Generate a signing key pair (seed 001, "JWKS Key Set").

    Prints {"public_jwks", "private_jwks"}, or with --private-out only the public JWKS. The
    public JWKS goes into your API client in Moneyhub's admin portal; the private one is
    MONEYHUB_PRIVATE_JWKS (the JSON itself, or @path to the file).
    """
    public, private = generate_jwks(alg, rsa_bits)
    if private_out is None:
        click.echo(json.dumps({"public_jwks": public, "private_jwks": private}, indent=2))
        return
    fd = os.open(private_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with wider permissions
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(private, handle, indent=2)
    click.echo(f"private JWKS written to {private_out}; set MONEYHUB_PRIVATE_JWKS=@{private_out}",
               err=True)
    click.echo(json.dumps(public, indent=2))
