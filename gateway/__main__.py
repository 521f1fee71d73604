"""`python -m gateway ...` is gatewayctl."""

from gateway.cli import main

if __name__ == "__main__":  # not when a worker process (imports' number parser) loads the parent's main module
    main()
