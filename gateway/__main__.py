"""`python -m gateway ...` is gatewayctl."""

from gateway.cli import main

if __name__ == "__main__":  # not when imported (multiprocessing's spawn loads the parent's main module)
    main()
