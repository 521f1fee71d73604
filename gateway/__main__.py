"""`python -m gateway ...` is gatewayctl."""

from gateway.cli import main

main()
