"""The asyncio layer: the only socket code.  It pumps bytes through the sans-I/O protocol cores."""
